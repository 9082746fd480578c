//! Stanford Online Products (PML's `StanfordOnlineProducts` dataset).

use std::path::Path;

use pml_core::PmlError;

use super::image_folder::{
    ImageFolderDataset, ImageItem, Split, bad_line, existing_image, parse_int, read_lines,
};

/// Stanford Online Products (Oh Song et al., "Deep Metric Learning via Lifted Structured Feature
/// Embedding", 2016) from its official layout, with its official split files (PML's
/// `StanfordOnlineProducts`).
///
/// `root` holds the extracted `Stanford_Online_Products/` (as PML's `root`); read are
/// `Stanford_Online_Products/Ebay_train.txt` and/or `Ebay_test.txt` (a header line, then
/// `<image_id> <class_id> <super_class_id> <relative path>` per line) and the images they name.
/// Labels are the class ids; the super class ids are the dataset's
/// [`super_labels`](ImageFolderDataset::super_labels) (for
/// [`HierarchicalSampler`](crate::samplers::HierarchicalSampler)).
///
/// # Errors
/// [`PmlError::File`] naming the file: a split file missing or unreadable, a line without its
/// four fields or with non-integer ids (with its line number), or a missing image (with the
/// line naming it).
pub fn stanford_online_products(
    root: impl AsRef<Path>,
    split: Split,
) -> Result<ImageFolderDataset, PmlError> {
    let base = root.as_ref().join("Stanford_Online_Products");
    let parts: &[&str] = match split {
        Split::Train => &["train"],
        Split::Test => &["test"],
        Split::TrainTest => &["train", "test"],
    };
    let (mut items, mut super_labels) = (Vec::new(), Vec::new());
    for part in parts {
        let list = base.join(format!("Ebay_{part}.txt"));
        for (line, text) in read_lines(&list)?.into_iter().skip(1) {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let [_, class, super_class, path] = fields[..] else {
                return Err(bad_line(
                    &list,
                    line,
                    "<image_id> <class_id> <super_class_id> <path>",
                    &text,
                ));
            };
            items.push(ImageItem {
                path: existing_image(base.join(path), &list, line)?,
                label: parse_int(class, &list, line, "class_id")?,
            });
            super_labels.push(parse_int(super_class, &list, line, "super_class_id")?);
        }
    }
    Ok(ImageFolderDataset::from_checked(items, Some(super_labels)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::image_folder::tests::write_png;

    #[test]
    fn official_split_files_with_super_labels() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("Stanford_Online_Products");
        write_png(&base.join("bicycle_final/1_0.JPG"), 3, 2, [9; 3]);
        write_png(&base.join("bicycle_final/1_1.JPG"), 3, 2, [9; 3]);
        write_png(&base.join("chair_final/7_0.JPG"), 3, 2, [9; 3]);
        let header = "image_id class_id super_class_id path\n";
        std::fs::write(
            base.join("Ebay_train.txt"),
            format!("{header}1 1 1 bicycle_final/1_0.JPG\n2 1 1 bicycle_final/1_1.JPG\n"),
        )
        .unwrap();
        std::fs::write(
            base.join("Ebay_test.txt"),
            format!("{header}3 7 4 chair_final/7_0.JPG\n"),
        )
        .unwrap();
        let train = stanford_online_products(dir.path(), Split::Train).unwrap();
        assert_eq!(train.labels(), vec![1, 1]);
        assert_eq!(train.super_labels(), Some(&[1, 1][..]));
        let all = stanford_online_products(dir.path(), Split::TrainTest).unwrap();
        assert_eq!(
            (all.labels(), all.super_labels().unwrap()),
            (vec![1, 1, 7], &[1, 1, 4][..])
        );

        std::fs::write(base.join("Ebay_test.txt"), format!("{header}3 7 chair\n")).unwrap();
        let e = stanford_online_products(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Ebay_test.txt: line 2: expected `<image_id>"),
            "{e}"
        );
        std::fs::write(
            base.join("Ebay_test.txt"),
            format!("{header}3 7 4 chair/x.JPG\n"),
        )
        .unwrap();
        let e = stanford_online_products(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("chair/x.JPG: missing image (listed in"), "{e}");
        assert!(e.ends_with("Ebay_test.txt line 2)"), "{e}");
    }
}
