//! Where the config and data dir are: flags, then environment, then config, then defaults.

use std::path::PathBuf;

use portcullis_gateway::Config;

/// The `--config` / `--data-dir` pair `start` and `ctl` share.
#[derive(clap::Args, Debug, Clone)]
pub struct Location {
    /// Config file (portcullis.toml); every key optional.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config's data_dir).
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl Location {
    /// Loads and validates the config, applying `--data-dir`.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}
