//! Where values come from, in rising precedence: `.env`, then `.env.<TASKSTORE_ENV>`, then the
//! process environment, then command-line overrides. Files are read with `dotenvy`; only the
//! variables taskstore knows are taken from them.

use std::collections::BTreeMap;
use std::path::Path;

use super::Environment;
use super::values::{Raw, Source};
use super::variables::VARIABLES;
use crate::error::{Error, Result};

/// Every known variable from the layers above `dir`'s `.env` files, with its source.
pub(super) fn layered(dir: &Path, overrides: &[(&str, String)]) -> Result<Raw> {
    let mut values = Raw::new();
    let process: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| VARIABLES.contains(&k.as_str()))
        .collect();
    load(dir, ".env", &mut values)?;
    // The environment's own file is chosen by TASKSTORE_ENV as it stands after `.env`, unless
    // the process environment says otherwise.
    let env_name = process
        .get("TASKSTORE_ENV")
        .cloned()
        .or_else(|| values.get("TASKSTORE_ENV").map(|(v, _)| v.clone()));
    if let Some(env_name) = env_name {
        let env = Environment::parse(&env_name)
            .map_err(|message| Error::config("TASKSTORE_ENV", message))?;
        load(dir, &format!(".env.{}", env.as_str()), &mut values)?;
    }
    for (k, v) in process {
        values.insert(k, (v, Source::Environment));
    }
    for (k, v) in overrides {
        values.insert((*k).to_owned(), (v.clone(), Source::CommandLine));
    }
    Ok(values)
}

/// Adds the known variables of `dir/file` (if it exists) to `into`, over what is there.
fn load(dir: &Path, file: &str, into: &mut Raw) -> Result<()> {
    let path = dir.join(file);
    let iter = match dotenvy::from_path_iter(&path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(()),
        Err(_) => {
            return Err(Error::config(
                file,
                format!(
                    "cannot read {}; check that it is a readable .env file",
                    path.display()
                ),
            ));
        }
    };
    for item in iter {
        let (k, v) = item.map_err(|_| {
            Error::config(
                file,
                format!(
                    "{} has a malformed line; expected NAME=value",
                    path.display()
                ),
            )
        })?;
        if VARIABLES.contains(&k.as_str()) {
            into.insert(k, (v, Source::DotEnv(file.to_owned())));
        }
    }
    Ok(())
}
