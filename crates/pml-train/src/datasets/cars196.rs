//! Cars196 (PML's `Cars196` dataset).

use std::path::Path;

use pml_core::PmlError;

use super::image_folder::{
    ImageFolderDataset, ImageItem, Split, bad_line, existing_image, parse_int, read_lines,
};
use super::io::file_error;

/// Cars196 (Krause et al., "3D Object Representations for Fine-Grained Categorization", 2013) in
/// the class-folder layout that PML's `Cars196` reads, with PML's split: classes 1-98 train,
/// 99-196 test (images of both official halves, chosen by class, as in the metric-learning
/// papers).
///
/// Expected under `root` (PML's `root`):
/// * `names.csv`: the 196 class names, one per line (line `k` names class `k`);
/// * `anno_train.csv` and `anno_test.csv`: one image per line,
///   `<file>,<x1>,<y1>,<x2>,<y2>,<class>` (no header; only the first and last fields are used);
/// * the images at `car_data/car_data/<train|test>/<class name, "/" replaced by "-">/<file>`.
///
/// The devkit's `cars_annos.mat` (MATLAB) is not read: convert it to the CSV files above (the
/// widely shared "Stanford car dataset by classes folder" comes in this layout).
///
/// # Errors
/// [`PmlError::File`] naming the file: a list file missing or unreadable, a line with fewer
/// than two fields, a non-integer class or one outside `names.csv` (with its line number), or a
/// missing image (with the annotation line naming it).
pub fn cars196(root: impl AsRef<Path>, split: Split) -> Result<ImageFolderDataset, PmlError> {
    let root = root.as_ref();
    let names_csv = root.join("names.csv");
    let names: Vec<String> = std::fs::read_to_string(&names_csv)
        .map_err(|e| file_error(&names_csv, format!("cannot read: {e}")))?
        .lines()
        .map(|name| name.trim().to_string())
        .collect();
    let classes = match split {
        Split::Train => 1..=98,
        Split::Test => 99..=196,
        Split::TrainTest => 1..=196,
    };
    let mut items = Vec::new();
    for part in ["train", "test"] {
        let anno = root.join(format!("anno_{part}.csv"));
        for (line, text) in read_lines(&anno)? {
            let fields: Vec<&str> = text.split(',').collect();
            let (Some(file), Some(class), true) =
                (fields.first(), fields.last(), fields.len() >= 2)
            else {
                return Err(bad_line(&anno, line, "<file>,...,<class>", &text));
            };
            let class = parse_int(class, &anno, line, "class")?;
            let name = usize::try_from(class)
                .ok()
                .and_then(|c| c.checked_sub(1))
                .and_then(|c| names.get(c))
                .ok_or_else(|| {
                    file_error(
                        &anno,
                        format!(
                            "line {line}: class {class} has no name in {} ({} names)",
                            names_csv.display(),
                            names.len()
                        ),
                    )
                })?;
            if !classes.contains(&class) {
                continue;
            }
            let path = root
                .join("car_data/car_data")
                .join(part)
                .join(name.replace('/', "-"))
                .join(file.trim());
            items.push(ImageItem {
                path: existing_image(path, &anno, line)?,
                label: class,
            });
        }
    }
    Ok(ImageFolderDataset::from_checked(items, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::image_folder::tests::write_png;

    #[test]
    fn pml_layout_and_class_split() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut names: Vec<String> = (1..=196).map(|k| format!("Car {k}")).collect();
        names[0] = "AM General Hummer SUV 2000".into();
        names[173] = "Ram C/V Cargo Van Minivan 2012".into();
        std::fs::write(root.join("names.csv"), names.join("\n")).unwrap();
        std::fs::write(
            root.join("anno_train.csv"),
            "00001.jpg,1,2,3,4,1\n00002.jpg,1,2,3,4,174\n",
        )
        .unwrap();
        std::fs::write(root.join("anno_test.csv"), "00003.jpg,5,6,7,8,1\n").unwrap();
        let data = root.join("car_data/car_data");
        write_png(
            &data.join("train/AM General Hummer SUV 2000/00001.jpg"),
            2,
            2,
            [0; 3],
        );
        write_png(
            &data.join("train/Ram C-V Cargo Van Minivan 2012/00002.jpg"),
            2,
            2,
            [0; 3],
        );
        write_png(
            &data.join("test/AM General Hummer SUV 2000/00003.jpg"),
            2,
            2,
            [0; 3],
        );

        let train = cars196(root, Split::Train).unwrap();
        assert_eq!(train.labels(), vec![1, 1]);
        assert!(train.items()[1].path.starts_with(data.join("test")));
        assert_eq!(cars196(root, Split::Test).unwrap().labels(), vec![174]);
        assert_eq!(cars196(root, Split::TrainTest).unwrap().len(), 3);

        std::fs::write(root.join("anno_test.csv"), "00003.jpg,5,6,7,8,197\n").unwrap();
        let e = cars196(root, Split::Train).unwrap_err().to_string();
        assert!(
            e.contains("anno_test.csv: line 1: class 197 has no name in"),
            "{e}"
        );
        std::fs::write(root.join("anno_test.csv"), "00004.jpg,5,6,7,8,1\n").unwrap();
        let e = cars196(root, Split::Train).unwrap_err().to_string();
        assert!(e.contains("00004.jpg: missing image (listed in"), "{e}");
        assert!(e.ends_with("anno_test.csv line 1)"), "{e}");
        std::fs::write(root.join("anno_test.csv"), "00004.jpg\n").unwrap();
        let e = cars196(root, Split::Train).unwrap_err().to_string();
        assert!(
            e.ends_with("line 1: expected `<file>,...,<class>`, found `00004.jpg`"),
            "{e}"
        );
    }
}
