//! A damaged store or a changed key stops the start with a message that names what and
//! says what to do, never a panic, a silently empty store, or every request failing.

mod common;

use common::Gatehouse;

/// `gatehouse serve` on `g`'s config, expected to refuse: its stderr.
fn refused_start(g: &Gatehouse) -> String {
    common::refused_serve(&g.config_path)
}

/// Copies a directory tree (the backup the README describes: the whole data directory,
/// server stopped).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_garbled_store_is_refused_with_its_path_and_what_to_do_and_a_backup_restores_it() {
    let mut g = Gatehouse::start("");
    g.kill9();
    let data = g.dir.path().join("data");
    let backup = g.dir.path().join("backup");
    copy_tree(&data, &backup);
    let db = g.dir.path().join("data/store/db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().skip(64).step_by(7) {
        *b ^= 0xff;
    }
    std::fs::write(&db, bytes).unwrap();
    let err = refused_start(&g);
    assert!(err.contains("data/store"), "names the store: {err}");
    assert!(err.contains("backup"), "says what to do: {err}");

    // Restored from the backup, it starts with everything it had.
    std::fs::remove_dir_all(&data).unwrap();
    copy_tree(&backup, &data);
    g.spawn();
    let (ok, out, _) = g.cli(&["user", "list"]);
    assert!(ok && out.contains("ann") && out.contains("bob"), "{out}");
}

#[test]
fn a_truncated_store_is_refused_too() {
    let mut g = Gatehouse::start("");
    g.kill9();
    let db = g.dir.path().join("data/store/db");
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(10).unwrap();
    let err = refused_start(&g);
    assert!(
        err.contains("data/store") && err.contains("backup"),
        "{err}"
    );
}

#[test]
fn a_changed_key_stops_the_start_until_the_operator_accepts_it() {
    let mut g = Gatehouse::start("");
    g.kill9();
    let key = g.dir.path().join("data/encryption.key");
    std::fs::write(&key, "a-completely-different-key-of-enough-length-123").unwrap();
    let err = refused_start(&g);
    assert!(err.contains("storage.encryption_key"), "{err}");
    assert!(err.contains("keys accept"), "{err}");

    let session_key = g.dir.path().join("data/session.key");
    let original = std::fs::read(&session_key).unwrap();
    std::fs::write(&session_key, "another-session-secret-of-enough-length-4567").unwrap();
    let err = refused_start(&g);
    assert!(err.contains("session.secret"), "{err}");
    std::fs::write(&session_key, original).unwrap();

    // Changed on purpose: accepted, then the server starts.
    let (ok, out, err) = g.cli(&["keys", "accept"]);
    assert!(ok, "{out}{err}");
    g.spawn();
    let (ok, out, _) = g.cli(&["user", "list"]);
    assert!(ok && out.contains("ann"), "{out}");
}
