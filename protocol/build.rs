//! Writes the `sol!` bindings of the contracts. With the `deploy` feature it compiles
//! `contracts/src` with foundry-compilers through the same solc that forge uses (the npm solc
//! stand-in, or `SOLC=/path/to/solc`) and binds the artifacts, bytecode included; with only
//! `bindings` (a phone build) it binds the ABIs committed under `abi/` and needs no compiler,
//! no Node.js and no contract build. `tests/abi.rs` keeps the two the same.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

#[cfg(feature = "deploy")]
use foundry_compilers::{
    Project, ProjectPathsConfig,
    artifacts::{
        EvmVersion, Optimizer, Remapping, Settings, SettingsMetadata,
        solc::{BytecodeHash, output_selection::OutputSelection},
    },
    compilers::{
        multi::{MultiCompiler, MultiCompilerSettings},
        solc::{Solc, SolcCompiler},
    },
};

/// The contracts the Rust side binds to.
const CONTRACTS: [&str; 4] = [
    "SmartMeshToken",
    "SignedAgent",
    "TokenNetwork",
    "ConditionRegistry",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    if env::var_os("CARGO_FEATURE_DEPLOY").is_some() {
        compile(&manifest_dir, &out_dir);
    } else if env::var_os("CARGO_FEATURE_BINDINGS").is_some() {
        let abi = manifest_dir.join("abi");
        println!("cargo:rerun-if-changed={}", abi.display());
        bind(&out_dir, |name| abi.join(format!("{name}.json")));
    }
}

/// Writes `bindings.rs`: one `sol!` for each contract, from the JSON file `source` names.
fn bind(out_dir: &Path, source: impl Fn(&str) -> PathBuf) {
    let mut bindings = String::new();
    for name in CONTRACTS {
        let file = source(name);
        if !file.is_file() {
            fail(&format!("no ABI for {name} at {}", file.display()));
        }
        bindings.push_str(&format!(
            "alloy::sol!(\n    #[allow(missing_docs)]\n    #[sol(rpc, all_derives)]\n    {name},\n    {:?}\n);\n",
            file.display().to_string()
        ));
    }
    write_if_changed(&out_dir.join("bindings.rs"), &bindings);
}

#[cfg(feature = "deploy")]
fn compile(manifest_dir: &Path, out_dir: &Path) {
    let contracts = manifest_dir
        .join("../contracts")
        .canonicalize()
        .expect("contracts/ exists");

    println!("cargo:rerun-if-changed={}", contracts.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        contracts.join("foundry.toml").display()
    );
    println!("cargo:rerun-if-env-changed=SOLC");

    let node_modules = contracts.join("node_modules");
    if !node_modules.join("@openzeppelin/contracts").is_dir() || !node_modules.join("solc").is_dir()
    {
        fail(&format!(
            "{} is missing or incomplete: run scripts/setup (it runs `npm ci` in contracts/)",
            node_modules.display()
        ));
    }
    let solc_path = env::var_os("SOLC")
        .map(PathBuf::from)
        .unwrap_or_else(|| contracts.join("bin/solc"));
    let solc = Solc::new(&solc_path)
        .unwrap_or_else(|e| fail(&format!("cannot run solc at {}: {e}", solc_path.display())));

    let artifacts = out_dir.join("artifacts");
    let nothing = out_dir.join("no-tests-or-scripts");
    let paths = ProjectPathsConfig::builder()
        .root(&contracts)
        .sources(contracts.join("src"))
        .tests(&nothing)
        .scripts(&nothing)
        .artifacts(&artifacts)
        .cache(out_dir.join("solidity-files-cache.json"))
        .build_infos(out_dir.join("build-info"))
        .lib(&node_modules)
        .remapping(Remapping {
            context: None,
            name: "@openzeppelin/contracts/".into(),
            path: format!(
                "{}/",
                node_modules.join("@openzeppelin/contracts").display()
            ),
        })
        .build()
        .unwrap_or_else(|e| fail(&format!("bad contract paths: {e}")));

    let project = Project::builder()
        .paths(paths)
        .settings(settings())
        .build(
            MultiCompiler::new(Some(SolcCompiler::Specific(solc)), None)
                .unwrap_or_else(|e| fail(&format!("cannot set up the compiler: {e}"))),
        )
        .unwrap_or_else(|e| fail(&format!("cannot set up the contracts project: {e}")));
    let output = project
        .compile()
        .unwrap_or_else(|e| fail(&format!("solc failed: {e}")));
    if output.has_compiler_errors() {
        fail(&format!("the contracts do not compile:\n{output}"));
    }

    // The fresh artifacts, for tests/abi.rs to compare with the committed ABIs.
    println!(
        "cargo:rustc-env=SMARTMESH_ARTIFACTS={}",
        artifacts.display()
    );
    bind(out_dir, |name| {
        artifacts.join(format!("{name}.sol/{name}.json"))
    });
}

#[cfg(not(feature = "deploy"))]
fn compile(_: &Path, _: &Path) {
    unreachable!("the deploy feature is off")
}

/// The settings of `contracts/foundry.toml`, so the bytecode deployed from Rust is the bytecode
/// forge tests and measures.
#[cfg(feature = "deploy")]
fn settings() -> MultiCompilerSettings {
    let mut settings = MultiCompilerSettings::default();
    let solc: &mut Settings = &mut settings.solc.settings;
    solc.optimizer = Optimizer {
        enabled: Some(true),
        runs: Some(10_000),
        details: None,
    };
    solc.via_ir = Some(true);
    solc.evm_version = Some(EvmVersion::Prague);
    solc.metadata = Some(SettingsMetadata::new(BytecodeHash::None, false));
    solc.output_selection = OutputSelection::default_output_selection();
    settings
}

fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(contents) {
        fs::write(path, contents)
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    println!("cargo:warning={message}");
    std::process::exit(1);
}
