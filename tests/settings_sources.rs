//! Settings resolved as Prefect resolves them: for each source (environment, `.env`,
//! `prefect.toml`, `pyproject.toml`, profile) and their order, the SDK reads the same API URL,
//! key, timeout and retries as Prefect's own `get_current_settings()` in the same directory
//! with the same environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use prefect_client::Config;
use prefect_client::config::Origin;

/// What both sides resolved.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct Resolved {
    url: Option<String>,
    key: Option<String>,
    timeout: f64,
    retries: u32,
}

const PRINT: &str = r#"
import json
from prefect.settings import get_current_settings
s = get_current_settings()
key = s.api.key.get_secret_value() if s.api.key else None
url = s.api.url.rstrip("/") if s.api.url else None
print(json.dumps({"url": url, "key": key or None, "timeout": s.api.request_timeout, "retries": s.client.max_retries}))
"#;

/// Prefect's own resolution, in `dir` with exactly `env` (and a PATH and HOME).
fn prefect(dir: &Path, env: &BTreeMap<String, String>) -> Resolved {
    let venv = prefect_testkit::ensure_venv().expect("Prefect's venv");
    let output = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(PRINT)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(env)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).expect("Prefect's settings as JSON")
}

fn sdk(dir: &Path, env: &BTreeMap<String, String>) -> Resolved {
    let config = Config::from_lookup_in(|name| env.get(name).cloned(), dir).unwrap();
    // The key itself is never shown: each source of the cases sets a key naming it.
    let key = config
        .has_api_key()
        .then(|| match config.origin("PREFECT_API_KEY") {
            Origin::Environment => env["PREFECT_API_KEY"].clone(),
            Origin::DotEnv(_) => "dotenv-key".to_string(),
            Origin::PrefectToml(_) => "toml-key".to_string(),
            Origin::Pyproject(_) => "pyproject-key".to_string(),
            Origin::Profile { .. } => "profile-key".to_string(),
            other => format!("{other:?}"),
        });
    Resolved {
        url: Some(config.api_url().to_string()),
        key,
        timeout: config.request_timeout().as_secs_f64(),
        retries: config.max_retries(),
    }
}

struct Case {
    name: &'static str,
    env: Vec<(&'static str, &'static str)>,
    files: Vec<(&'static str, &'static str)>,
    profiles: Option<&'static str>,
}

const PROFILE: &str = "active = 'p'\n[profiles.p]\nPREFECT_API_URL = 'http://profile:1/api'\nPREFECT_API_KEY = 'profile-key'\nPREFECT_API_REQUEST_TIMEOUT = 100000\nPREFECT_CLIENT_MAX_RETRIES = 1\n";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "the profile alone, with a timeout above a day",
            env: vec![],
            files: vec![],
            profiles: Some(PROFILE),
        },
        Case {
            name: "an empty key in the environment overrides the profile's",
            env: vec![("PREFECT_API_KEY", "")],
            files: vec![],
            profiles: Some(PROFILE),
        },
        Case {
            name: "prefect.toml in the working directory beats the profile",
            env: vec![],
            files: vec![(
                "prefect.toml",
                "[api]\nurl = 'http://toml:1/api'\nrequest_timeout = 7.5\n[client]\nmax_retries = 3\n",
            )],
            profiles: Some(PROFILE),
        },
        Case {
            name: "pyproject.toml's [tool.prefect] beats the profile, not prefect.toml",
            env: vec![],
            files: vec![
                ("prefect.toml", "[api]\nurl = 'http://toml:1/api'\n"),
                (
                    "pyproject.toml",
                    "[tool.prefect.api]\nurl = 'http://pyproject:1/api'\nkey = 'pyproject-key'\n",
                ),
            ],
            profiles: Some(PROFILE),
        },
        Case {
            name: ".env beats prefect.toml",
            env: vec![],
            files: vec![
                (
                    ".env",
                    "PREFECT_API_URL=http://dotenv:1/api\nPREFECT_CLIENT_MAX_RETRIES=4\n",
                ),
                ("prefect.toml", "[api]\nurl = 'http://toml:1/api'\n"),
            ],
            profiles: Some(PROFILE),
        },
        Case {
            name: "the environment beats every file",
            env: vec![
                ("PREFECT_API_URL", "http://env:1/api"),
                ("PREFECT_API_REQUEST_TIMEOUT", "12"),
            ],
            files: vec![
                (".env", "PREFECT_API_URL=http://dotenv:1/api\n"),
                ("prefect.toml", "[api]\nurl = 'http://toml:1/api'\n"),
            ],
            profiles: Some(PROFILE),
        },
    ]
}

#[test]
fn every_source_resolves_as_prefect_resolves_it() {
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        for (name, text) in &case.files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        if let Some(profiles) = case.profiles {
            std::fs::write(home.path().join("profiles.toml"), profiles).unwrap();
        }
        let mut env: BTreeMap<String, String> = case
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("PREFECT_HOME".into(), home.path().display().to_string());
        let theirs = prefect(dir.path(), &env);
        let ours = sdk(dir.path(), &env);
        assert_eq!(ours.url, theirs.url, "{}: URL", case.name);
        assert_eq!(ours.timeout, theirs.timeout, "{}: timeout", case.name);
        assert_eq!(ours.retries, theirs.retries, "{}: retries", case.name);
        assert_eq!(ours.key, theirs.key, "{}: key", case.name);
    }
}
