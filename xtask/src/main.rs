//! `cargo run -p xtask -- dist DIR`: the man pages (gzipped, as Debian policy wants) and the bash, zsh
//! and fish completions of both binaries, generated from their clap definitions so that they never
//! drift from the code. `scripts/package` runs it and the packages install its output.
//! `cargo run -p xtask -- config-keys`: every key of both config files, traced from their
//! `Deserialize` impls (`keys.rs`), which `docs/config-reference.md` must document.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Command, CommandFactory};
use clap_complete::Shell;
use flate2::Compression;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, dir] if task == "dist" => {
            let out = PathBuf::from(dir);
            for cmd in [
                callhome_agent::cli::Cli::command(),
                callhome_collector::cli::Cli::command(),
            ] {
                generate(cmd, &out)?;
            }
            Ok(())
        }
        [task] if task == "config-keys" => {
            for (binary, keys) in [
                (
                    "callhome-agent",
                    xtask::keys::keys::<callhome_agent::config::Config>(),
                ),
                (
                    "callhome-collector",
                    xtask::keys::keys::<callhome_collector::config::Config>(),
                ),
            ] {
                for key in keys.map_err(anyhow::Error::msg)? {
                    println!("{binary}\t{key}");
                }
            }
            Ok(())
        }
        _ => bail!(
            "usage: xtask dist DIR     man pages (DIR/man/man1) and completions (DIR/completions)\n       \
             xtask config-keys   every config key of both binaries (docs/config-reference.md)"
        ),
    }
}

fn generate(cmd: Command, out: &Path) -> anyhow::Result<()> {
    let name = cmd.get_name().to_owned();
    let man_dir = out.join("man/man1");
    fs::create_dir_all(&man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    write_pages(cmd.clone(), &name, &name, &man_dir)?;

    let comp_dir = out.join("completions");
    fs::create_dir_all(&comp_dir).with_context(|| format!("creating {}", comp_dir.display()))?;
    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let path = comp_dir.join(file);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut buf);
        fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One page per command and per subcommand, named after its path (`callhome-collector-org-add.1`),
/// as git does; the synopsis shows how it is typed (`callhome-collector org add`).
fn write_pages(cmd: Command, page: &str, typed: &str, dir: &Path) -> anyhow::Result<()> {
    let cmd = cmd
        .disable_help_subcommand(true)
        .name(page.to_owned())
        .bin_name(typed.to_owned());
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut text)
        .context("rendering a man page")?;
    write_gz(&dir.join(format!("{page}.1.gz")), &text)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        write_pages(
            sub.clone(),
            &format!("{page}-{name}"),
            &format!("{typed} {name}"),
            dir,
        )?;
    }
    Ok(())
}

/// gzip -9n: maximum compression and no timestamp, so a rebuild gives the same bytes.
fn write_gz(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut gz = flate2::GzBuilder::new().mtime(0).write(file, Compression::best());
    gz.write_all(bytes)
        .and_then(|()| gz.try_finish())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
