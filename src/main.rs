//! The `novajoin` command (and `novajoin-status`); everything else is in
//! the library.

// mimalloc: many small, short-lived allocations per request across the
// worker threads, on which glibc's malloc contends.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Installed under a second name too, as OpenStack services ship
    // `<service>-status`: `novajoin-status upgrade check`.
    let code = if novajoin::cli::status::invoked_as_status() {
        novajoin::cli::status::main_as_status()
    } else {
        novajoin::cli::main()
    };
    std::process::exit(code);
}
