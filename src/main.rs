fn main() {
    std::process::exit(novajoin::cli::main());
}
