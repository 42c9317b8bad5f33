//! Migration directories for tests that add steps of their own to the product's.

use std::path::Path;

/// A temporary copy of the product's migrations for `backend` ("postgres" or "sqlite"), to
/// which a test adds its own steps (named after them, e.g. `2099-01-01-000001_…`).
pub fn product_copy(backend: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let product = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&product).unwrap() {
        let entry = entry.unwrap();
        let to = dir.path().join(entry.file_name());
        std::fs::create_dir(&to).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
    dir
}
