use std::ffi::OsString;
use std::path::PathBuf;

use notify::event::{AccessKind, CreateKind, DataChange, ModifyKind, RenameMode};
use notify::{Event, EventKind};

use super::concerns;

fn names() -> Vec<OsString> {
    vec!["outrider.yaml".into(), "tls.crt".into()]
}

fn event(kind: EventKind, paths: &[&str]) -> Event {
    let mut e = Event::new(kind);
    for p in paths {
        e = e.add_path(PathBuf::from(p));
    }
    e
}

const WRITE: EventKind = EventKind::Modify(ModifyKind::Data(DataChange::Content));

#[test]
fn writes_to_the_watched_files_count() {
    assert!(concerns(&event(WRITE, &["/etc/o/outrider.yaml"]), &names()));
    assert!(concerns(&event(WRITE, &["/etc/tls/tls.crt"]), &names()));
}

#[test]
fn other_files_in_the_directory_do_not() {
    for other in [
        "/etc/o/access.log",
        "/etc/o/outrider.yaml.bak",
        "/etc/o/4913",
    ] {
        assert!(!concerns(&event(WRITE, &[other]), &names()), "{other}");
    }
}

#[test]
fn a_rename_onto_the_file_counts() {
    // An editor's save: a temporary file renamed over the watched one.
    let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    assert!(concerns(
        &event(both, &["/etc/o/.outrider.yaml.swp", "/etc/o/outrider.yaml"]),
        &names()
    ));
    let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    assert!(concerns(&event(to, &["/etc/o/outrider.yaml"]), &names()));
}

#[test]
fn kubelet_symlink_swaps_count() {
    let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    assert!(concerns(&event(to, &["/etc/o/..data"]), &names()));
    let created = EventKind::Create(CreateKind::Folder);
    assert!(concerns(
        &event(created, &["/etc/o/..2026_11_28_00_00_00.123"]),
        &names()
    ));
}

#[test]
fn reads_never_count_and_rescans_always_do() {
    let read = EventKind::Access(AccessKind::Any);
    assert!(!concerns(&event(read, &["/etc/o/outrider.yaml"]), &names()));
    assert!(concerns(&event(EventKind::Other, &[]), &names()));
    let rescan = event(WRITE, &["/etc/o/access.log"]).set_flag(notify::event::Flag::Rescan);
    assert!(concerns(&rescan, &names()));
}
