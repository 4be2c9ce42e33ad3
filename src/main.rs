// mimalloc: many small, short-lived allocations per request across two
// worker threads; glibc's malloc spent a fifth of the cache-hit path on
// them (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(novajoin::cli::main());
}
