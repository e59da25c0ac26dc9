//! `pwsync completions SHELL` and `pwsync man`: generated from the clap definitions, so they
//! never drift from the flags the binary accepts (the .deb ships their output).

use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write pwsync.1 and one page per command (pwsync-serve.1, …) into this directory instead
    /// of printing pwsync.1.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "pwsync", &mut std::io::stdout());
}

pub fn man(args: ManArgs) -> Result<()> {
    let cmd = crate::Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))
        }
        None => Ok(clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?),
    }
}
