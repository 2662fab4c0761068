//! `callhome-collector`: the binary is a thin shell over the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    callhome_collector::cli::main()
}
