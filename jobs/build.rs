// `sqlx::migrate!` embeds ../migrations at compile time; without this, editing or adding a
// migration would not rebuild the crate and binaries would carry stale migrations.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
