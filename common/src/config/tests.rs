use super::*;

#[test]
fn a_key_is_blamed_on_the_file_and_line_that_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(&main, "[a]\nx = 1\n").unwrap();
    std::fs::create_dir(dir.path().join("c.d")).unwrap();
    std::fs::write(dir.path().join("c.d/10.toml"), "# drop-in\n[a.b]\ny = 2\n").unwrap();
    let (value, sources) = load::<toml::Table>(&main, None).unwrap();
    assert_eq!(value["a"]["x"].as_integer(), Some(1));
    assert_eq!(value["a"]["b"]["y"].as_integer(), Some(2));
    assert_eq!(sources.file_for("a.b.y"), dir.path().join("c.d/10.toml"));
    assert_eq!(sources.file_for("a.b.z"), dir.path().join("c.d/10.toml"));
    assert_eq!(sources.file_for("a.x"), main);
    assert_eq!(sources.file_for("q"), main);
    let err = sources
        .invalid(KeyError::new("a.b.y", "too big"))
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:3:1: key a.b.y: too big",
            dir.path().join("c.d/10.toml").display()
        )
    );
    // A key no file set: where the last file that wrote its table opened it.
    let err = sources.invalid(KeyError::new("a.w", "no")).to_string();
    assert!(err.ends_with("c.d/10.toml:2:2: key a.w: no"), "{err}");
    let err = sources.invalid(KeyError::new("q", "no")).to_string();
    assert!(err.ends_with("c.toml: key q: no"), "{err}");
    assert_eq!(Sources::default().file_for("a"), Path::new("(no file)"));
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    t: Inner,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Inner {
    url: String,
    #[serde(default)]
    password_file: Option<String>,
    #[serde(default, deserialize_with = "crate::units::bytes")]
    max_bytes: u64,
    #[serde(default)]
    #[allow(dead_code)]
    port: u16,
    #[serde(default)]
    #[allow(dead_code)]
    hook: Vec<Hook>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Hook {
    #[allow(dead_code)]
    url: String,
}

#[test]
fn a_dropin_may_complete_a_table_whose_required_key_is_in_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(&main, "[t]\nurl = \"amqp://x/\"\n").unwrap();
    std::fs::create_dir(dir.path().join("c.d")).unwrap();
    std::fs::write(
        dir.path().join("c.d/10.toml"),
        "[t]\npassword_file = \"/p\"\n",
    )
    .unwrap();
    let (value, _) = load::<Table>(&main, None).unwrap();
    assert_eq!(value.t.url, "amqp://x/");
    assert_eq!(value.t.password_file.as_deref(), Some("/p"));
    // A typo is still the drop-in's.
    std::fs::write(
        dir.path().join("c.d/20.toml"),
        "[t]\npasword_file = \"/p\"\n",
    )
    .unwrap();
    let err = load::<Table>(&main, None).unwrap_err().to_string();
    assert!(
        err.contains("20.toml:2:1: key t.pasword_file: unknown key; did you mean `password_file`?"),
        "{err}"
    );
}

#[test]
fn every_mistake_of_every_file_is_reported_at_once_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(
        &main,
        "[t]\nurl = \"x\"\nmax_bytes = \"12 apples\"\nprot = 80\npasword_file = \"/p\"\nport = \"eighty\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("c.d")).unwrap();
    std::fs::write(dir.path().join("c.d/10.toml"), "[t\nurl = 1\n").unwrap();
    std::fs::write(
        dir.path().join("c.d/20.toml"),
        "[t]\npassword_file = \"${PICKET_TEST_SURELY_UNSET_VARIABLE}\"\n",
    )
    .unwrap();
    let loaded = load_all::<Table>(&main, None);
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    let text = errors.join("\n");
    // In file order (main file first), then by line.
    let expect = [
        "c.toml:3:1: key t.max_bytes: \"12 apples\" is not a size",
        "c.toml:4:1: key t.prot: unknown key; did you mean `port`?",
        "c.toml:5:1: key t.pasword_file: unknown key; did you mean `password_file`?",
        "c.toml:6:1: key t.port: invalid type: string \"eighty\", expected u16",
        "10.toml:1:3: not TOML: invalid table header",
        "20.toml:2:18: environment variable PICKET_TEST_SURELY_UNSET_VARIABLE is not set",
    ];
    assert_eq!(errors.len(), expect.len(), "{text}");
    for (error, want) in errors.iter().zip(expect) {
        assert!(error.contains(want), "{want:?} expected, got\n{text}");
    }
    // What could be read is there, its bad keys at their defaults.
    let value = loaded.value.expect("the rest of the table");
    assert_eq!(value.t.url, "x");
    assert_eq!(value.t.max_bytes, 0);
}

#[test]
fn a_required_key_taken_out_for_its_error_is_not_reported_missing_too() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(&main, "[t]\nurl = 5\n").unwrap();
    let loaded = load_all::<Table>(&main, None);
    assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
    let err = loaded.errors[0].to_string();
    assert!(err.contains("c.toml:2:1: key t.url: invalid type"), "{err}");
    assert!(loaded.value.is_none());
    assert_eq!(loaded.removed, ["t.url"]);
}

#[test]
fn build_errors_follow_the_readers_and_skip_keys_already_reported() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(&main, "[t]\nurl = \"x\"\nmax_bytes = \"lots\"\n").unwrap();
    let result = load_all::<Table>(&main, None).build(|table, sources| {
        let mut collect = Collect::new(sources);
        collect.push(KeyError::new("t.url", "is no URL"));
        collect.push(KeyError::new("t.max_bytes", "repeats the reader's error"));
        collect.finish().map(|()| table.t.url.clone())
    });
    let err = result.unwrap_err();
    let lines: Vec<String> = err.errors().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("key t.max_bytes: \"lots\" is not a size"));
    assert!(lines[1].contains("c.toml:2:1: key t.url: is no URL"));
}

#[test]
fn interpolation_follows_vectors_rules_for_braces() {
    let env = |name: &str| match name {
        "HOST" => Some("collector.example.org".to_string()),
        "EMPTY" => Some(String::new()),
        "EVIL" => Some("x\"\n[agent]\nhostname = \"y".to_string()),
        _ => None,
    };
    let (text, problems) = interpolate(
        "url = \"https://${HOST}:8443/\"\n\
         a = \"${MISSING:-fallback}\"\n\
         b = \"${EMPTY:-fallback}\"\n\
         c = \"${EMPTY-kept}\"\n\
         d = \"$${HOST} and $HOST and cost $5\"\n\
         # ${MISSING} in a comment\n",
        env,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        text,
        "url = \"https://collector.example.org:8443/\"\n\
         a = \"fallback\"\n\
         b = \"fallback\"\n\
         c = \"\"\n\
         d = \"${HOST} and $HOST and cost $5\"\n\
         # ${MISSING} in a comment\n"
    );
    let (_, problems) = interpolate(
        "a = \"${MISSING}\"\nb = \"${EMPTY:?must be set}\"\nc = \"${EVIL}\"\nd = \"${1X}\"\ne = \"${OPEN\"\n",
        env,
    );
    let described: Vec<String> = problems
        .iter()
        .map(|(at, m)| format!("{}:{} {m}", at.line, at.column))
        .collect();
    assert_eq!(described.len(), 5, "{described:#?}");
    assert!(described[0].starts_with("1:6 environment variable MISSING is not set"));
    assert!(described[1].starts_with("2:6 environment variable EMPTY: must be set"));
    assert!(described[2].contains("line break"));
    assert!(described[3].contains("names no environment variable"));
    assert!(described[4].contains("without its closing"));
}

#[test]
fn near_names_are_suggested_and_far_ones_are_not() {
    let known: Vec<String> = ["url", "password_file", "max_bytes", "timeout_secs"]
        .map(String::from)
        .to_vec();
    assert!(unknown_message("timout_secs", &known).contains("did you mean `timeout_secs`"));
    assert!(unknown_message("urll", &known).contains("did you mean `url`"));
    assert!(unknown_message("max_byets", &known).contains("did you mean `max_bytes`"));
    assert!(!unknown_message("colour", &known).contains("did you mean"));
    assert_eq!(distance("ab", "ba"), 1);
    assert_eq!(distance("", "abc"), 3);
}

#[test]
fn an_unset_variable_written_unquoted_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(
        &main,
        "[t]\nurl = \"x\"\nport = ${PICKET_TEST_SURELY_UNSET_PORT}\n",
    )
    .unwrap();
    let loaded = load_all::<Table>(&main, None);
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .contains("c.toml:3:8: environment variable PICKET_TEST_SURELY_UNSET_PORT is not set"),
        "{errors:?}"
    );
}

#[test]
fn the_other_programs_variables_need_not_be_set() {
    #[derive(Debug, serde::Deserialize)]
    struct Mine {
        t: Inner,
        #[allow(dead_code)]
        other: Option<toml::Value>,
    }
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(
        &main,
        "[t]\nurl = \"x\"\n[other]\nurl = \"${PICKET_TEST_SURELY_UNSET_OTHER}\"\n",
    )
    .unwrap();
    let loaded = load_all::<Mine>(&main, Some("t"));
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert_eq!(loaded.value.unwrap().t.url, "x");
    // Read as the other program, it is an error.
    let loaded = load_all::<Mine>(&main, Some("other"));
    assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
}

#[test]
fn only_the_key_whose_value_failed_is_taken_out() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(
        &main,
        "t.url = \"x\"\nt.password_file = \"${PICKET_TEST_SURELY_UNSET_P}\"\nt.max_bytes = \"many\"\n",
    )
    .unwrap();
    let loaded = load_all::<Table>(&main, None);
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("c.toml:2:"), "{errors:?}");
    assert!(
        errors[1].contains("c.toml:3:3: key t.max_bytes"),
        "{errors:?}"
    );
    assert_eq!(loaded.removed, ["t.password_file", "t.max_bytes"]);
    assert_eq!(loaded.value.unwrap().t.url, "x");
}

#[test]
fn each_entry_of_an_array_of_tables_is_reported_on_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("c.toml");
    std::fs::write(
        &main,
        "[t]\nurl = \"x\"\n[[t.hook]]\nurl = \"a\"\n[[t.hook]]\nulr = \"b\"\n[[t.hook]]\nurl = 3\n",
    )
    .unwrap();
    let loaded = load_all::<Table>(&main, None);
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("c.toml:6:1: key t.hook[1].ulr: unknown key; did you mean `url`?"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("c.toml:8:1: key t.hook[2].url: invalid type"),
        "{errors:?}"
    );
}
