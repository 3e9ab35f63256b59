//! The `archiver` config file (`src/config_file.rs` over `archiver::config`): arbitrary TOML is
//! parsed and validated without a panic, a loaded config serializes back to TOML that loads to the
//! same config, and `--hoster` arguments parse or are refused.

use std::path::Path;

use archiver_cli::config_file::{parse_hoster_arg, ConfigFile};

use crate::control;

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if ctl % 4 == 3 {
        let _ = parse_hoster_arg(text);
        return;
    }
    let path = Path::new("/fuzz/archiver.toml");
    let Ok(loaded) = ConfigFile::parse(text, path) else {
        return;
    };
    assert!(loaded.archive.validate().is_ok());
    let again = toml::to_string_pretty(&loaded.file).unwrap();
    let reloaded = ConfigFile::parse(&again, path).unwrap();
    assert_eq!(reloaded.archive, loaded.archive, "config round trip");
    assert_eq!(reloaded.file.client, loaded.file.client);
    assert_eq!(*reloaded.key.to_hex(), *loaded.key.to_hex());
}
