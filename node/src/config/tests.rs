//! Tests of the configuration: flags over the file, key and token files, trust roots.

use super::*;

#[test]
fn flags_beat_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        "data_dir = \"/from/file\"\nnamespace = \"team\"\n",
    )
    .unwrap();
    let from_file = Config::resolve(&PathOverrides {
        data_dir: None,
        config: Some(config_path.clone()),
    })
    .unwrap();
    assert_eq!(from_file.data_dir, PathBuf::from("/from/file"));
    assert_eq!(from_file.namespace, "team");
    let from_flag = Config::resolve(&PathOverrides {
        data_dir: Some("/from/flag".into()),
        config: Some(config_path),
    })
    .unwrap();
    assert_eq!(from_flag.data_dir, PathBuf::from("/from/flag"));
}

#[test]
fn a_named_config_file_must_exist_except_for_init() {
    let dir = tempfile::tempdir().unwrap();
    let named = PathOverrides {
        data_dir: Some(dir.path().join("data")),
        config: Some(dir.path().join("typo.toml")),
    };
    let error = Config::resolve(&named).unwrap_err().to_string();
    assert!(
        error.contains("typo.toml") && error.contains("does not exist"),
        "{error}"
    );
    let for_init = Config::resolve_for_init(&named).unwrap();
    assert!(!for_init.config_file_exists);
}

#[test]
fn bad_config_files_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "data_dirr = \"/x\"\n").unwrap();
    let err = read_config_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("config.toml") && err.contains("data_dirr"),
        "{err}"
    );
    std::fs::write(&path, "namespace = \"Bad Name\"\n").unwrap();
    let err = read_config_file(&path).unwrap_err().to_string();
    assert!(err.contains("namespace"), "{err}");
}

#[test]
fn key_files_are_private_and_open_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE);
    let keypair = Keypair::generate();
    create_key_file(&path, &keypair).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(load_key_file(&path).unwrap().agent_id(), keypair.agent_id());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_key_file(&path).unwrap_err().to_string();
    assert!(err.contains("chmod 600") && err.contains(KEY_FILE), "{err}");
    // Creating over an existing key never replaces it.
    assert!(create_key_file(&path, &Keypair::generate()).is_err());
}

#[test]
fn a_key_that_is_not_the_data_directorys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE);
    let keypair = Keypair::generate();
    create_key_file(&path, &keypair).unwrap();
    load_key_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    create_key_file(&path, &Keypair::generate()).unwrap();
    let err = load_key_file(&path).unwrap_err().to_string();
    assert!(
        err.contains(&keypair.agent_id().to_string()) && err.contains("restore the original"),
        "{err}"
    );
}

#[test]
fn processes_loading_a_fresh_key_at_once_all_see_its_agent_recorded() {
    // Offline writers started together on a fresh data directory each load the key, and
    // the first records the agent id: none may read a half-written record (an empty id).
    for _ in 0..100 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let keypair = Keypair::generate();
        create_key_file(&path, &keypair).unwrap();
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            let loads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        load_key_file(&path).map(|loaded| loaded.agent_id())
                    })
                })
                .collect();
            for load in loads {
                assert_eq!(load.join().unwrap().unwrap(), keypair.agent_id());
            }
        });
        let recorded = std::fs::read_to_string(dir.path().join(AGENT_ID_FILE)).unwrap();
        assert_eq!(recorded, format!("{}\n", keypair.agent_id()));
    }
}

#[test]
fn a_directory_in_place_of_the_key_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE);
    std::fs::create_dir(&path).unwrap();
    let err = load_key_file(&path).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn the_token_is_written_whole_and_an_empty_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(TOKEN_FILE);
    // What a crash between creating the file and writing it left behind.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let token = load_or_create_token(dir.path()).unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{token}\n")
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Read back as is; and no temporary file is left.
    assert_eq!(load_or_create_token(dir.path()).unwrap(), token);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|item| item.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(TOKEN_FILE)]);
}

#[test]
fn a_missing_key_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_key_file(&dir.path().join(KEY_FILE))
        .unwrap_err()
        .to_string();
    assert!(err.contains("plexus init"), "{err}");
}

#[test]
fn bad_trust_roots_name_the_flag_or_the_entry_and_say_what_to_write() {
    let admin = Keypair::generate().agent_id().to_string();
    let missing_equals = parse_trust_root_flags(&[format!("team{admin}")]).unwrap_err();
    assert!(matches!(missing_equals, TrustRootError::NotAPair { .. }));
    assert!(
        missing_equals
            .to_string()
            .contains("must be NAMESPACE=ADMIN_AGENT_ID"),
        "{missing_equals}"
    );
    let bad_admin = parse_trust_root_flags(&["team=abc".to_owned()]).unwrap_err();
    let text = bad_admin.to_string();
    assert!(
        text.contains("trust root for team") && text.contains("\"abc\" is not an agent id"),
        "{text}"
    );
    let bad_namespace = parse_trust_root_flags(&[format!("Team={admin}")]).unwrap_err();
    assert!(matches!(bad_namespace, TrustRootError::BadNamespace { .. }));
    let roots = parse_trust_root_flags(&[format!("team={admin}"), format!("ops={admin}")]).unwrap();
    assert_eq!(roots.len(), 2);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[governance.trust_roots]\nteam = []\n").unwrap();
    let overrides = PathOverrides {
        data_dir: Some(dir.path().join("data")),
        config: Some(config.clone()),
    };
    let error = Config::resolve(&overrides).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ConfigError::TrustRoot { .. })
            && text.contains(&config.display().to_string())
            && text.contains("governance.trust_roots.team lists no admins"),
        "{text}"
    );
}
