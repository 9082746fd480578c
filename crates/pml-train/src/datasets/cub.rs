//! CUB-200-2011 (PML's `CUB` dataset).

use std::collections::HashMap;
use std::path::Path;

use pml_core::PmlError;

use super::image_folder::{
    ImageFolderDataset, ImageItem, Split, bad_line, existing_image, parse_int, read_lines,
};

/// CUB-200-2011 (Wah et al., Caltech-UCSD Birds, 2011) from its official archive's layout, with
/// PML's split (`CUB`): classes 1-100 train, 101-200 test, as in the metric-learning papers.
///
/// `root` is the folder that holds the extracted `CUB_200_2011/` (as PML's `root`); read are
/// `CUB_200_2011/images.txt` (`<image_id> <relative path>` per line),
/// `CUB_200_2011/image_class_labels.txt` (`<image_id> <class_id>`), and the images under
/// `CUB_200_2011/images/`. Labels are the class ids (1-200); items follow
/// `image_class_labels.txt`.
///
/// # Errors
/// [`PmlError::File`] naming the file: a list file missing or unreadable, a line without its two
/// fields or with a non-integer id (with its line number), an image id with no path in
/// `images.txt`, or a missing image (with the list line naming it).
pub fn cub_200_2011(root: impl AsRef<Path>, split: Split) -> Result<ImageFolderDataset, PmlError> {
    let base = root.as_ref().join("CUB_200_2011");
    let images_txt = base.join("images.txt");
    let labels_txt = base.join("image_class_labels.txt");
    let mut paths = HashMap::new();
    for (line, text) in read_lines(&images_txt)? {
        let (id, path) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad_line(&images_txt, line, "<image_id> <path>", &text))?;
        let id = parse_int(id, &images_txt, line, "image id")?;
        paths.insert(id, (line, path.trim().to_string()));
    }
    let classes = match split {
        Split::Train => 1..=100,
        Split::Test => 101..=200,
        Split::TrainTest => 1..=200,
    };
    let mut items = Vec::new();
    for (line, text) in read_lines(&labels_txt)? {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [id, class] = fields[..] else {
            return Err(bad_line(&labels_txt, line, "<image_id> <class_id>", &text));
        };
        let id = parse_int(id, &labels_txt, line, "image id")?;
        let class = parse_int(class, &labels_txt, line, "class id")?;
        if !classes.contains(&class) {
            continue;
        }
        let (path_line, path) = paths.get(&id).ok_or_else(|| {
            super::io::file_error(
                &labels_txt,
                format!(
                    "line {line}: image id {id} is not in {}",
                    images_txt.display()
                ),
            )
        })?;
        items.push(ImageItem {
            path: existing_image(base.join("images").join(path), &images_txt, *path_line)?,
            label: class,
        });
    }
    Ok(ImageFolderDataset::from_checked(items, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::image_folder::tests::write_png;

    fn fixture(dir: &Path) {
        let base = dir.join("CUB_200_2011");
        write_png(&base.join("images/001.A/a.png"), 2, 2, [1, 2, 3]);
        write_png(&base.join("images/150.B/b.png"), 2, 2, [1, 2, 3]);
        write_png(&base.join("images/001.A/c.png"), 2, 2, [1, 2, 3]);
        std::fs::write(
            base.join("images.txt"),
            "1 001.A/a.png\n2 150.B/b.png\n3 001.A/c.png\n",
        )
        .unwrap();
        std::fs::write(base.join("image_class_labels.txt"), "1 1\n2 150\n3 1\n").unwrap();
    }

    #[test]
    fn pml_class_split() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let train = cub_200_2011(dir.path(), Split::Train).unwrap();
        assert_eq!(train.labels(), vec![1, 1]);
        assert!(train.items()[1].path.ends_with("images/001.A/c.png"));
        let test = cub_200_2011(dir.path(), Split::Test).unwrap();
        assert_eq!(test.labels(), vec![150]);
        assert_eq!(cub_200_2011(dir.path(), Split::TrainTest).unwrap().len(), 3);
    }

    #[test]
    fn malformed_layouts_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let base = dir.path().join("CUB_200_2011");
        std::fs::remove_file(base.join("images/150.B/b.png")).unwrap();
        let err = || {
            cub_200_2011(dir.path(), Split::TrainTest)
                .unwrap_err()
                .to_string()
        };
        let e = err();
        assert!(e.contains("150.B/b.png: missing image (listed in "), "{e}");
        assert!(e.ends_with("images.txt line 2)"), "{e}");

        let labels = base.join("image_class_labels.txt");
        std::fs::write(&labels, "1 1\n\n3\n").unwrap();
        assert_eq!(
            err(),
            format!(
                "{}: line 3: expected `<image_id> <class_id>`, found `3`",
                labels.display()
            )
        );
        std::fs::write(&labels, "1 x\n").unwrap();
        assert!(err().ends_with("line 1: class id `x` is not an integer"));
        std::fs::write(&labels, "9 1\n").unwrap();
        let images_txt = base.join("images.txt");
        let expected = format!("line 1: image id 9 is not in {}", images_txt.display());
        assert!(err().ends_with(&expected));
        std::fs::remove_file(&labels).unwrap();
        assert!(err().contains("image_class_labels.txt: cannot read"));
    }
}
