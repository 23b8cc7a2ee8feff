//! migwatch's page, built by Trunk: see the library for what it does.

fn main() {
    migwatch_app::run();
}
