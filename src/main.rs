//! The `jack` binary: parse the command line, run it, map errors to exit codes.

use std::error::Error as _;

fn main() {
    let code = match jack::cli::main(std::env::args_os().skip(1)) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("jack: error: {err}");
            let mut cause = err.source();
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            err.exit_code()
        }
    };
    std::process::exit(code);
}
