//! Tests over the real public data sets run when `ECRM_DATASETS` names their folder; without
//! it they are compiled as ignored, so `cargo test` lists them as ignored instead of passing
//! them silently (`cfg(ecrm_datasets)`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ecrm_datasets)");
    println!("cargo::rerun-if-env-changed=ECRM_DATASETS");
    if std::env::var_os("ECRM_DATASETS").is_some() {
        println!("cargo::rustc-cfg=ecrm_datasets");
    }
}
