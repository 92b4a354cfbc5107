//! A first differential check: a short script against redis-server and percore (1 and 4 shards).

mod common;
use common::{Diff, Server};

const SCRIPT: &str = r#"
PING
PING hello
ECHO hi
SET a 1
GET a
INCR a
SET b hello
APPEND b world
GET b
STRLEN b
MGET a b missing
DEL a b missing
EXISTS a b
GET
SET k v XX
SET k v NX
SET k v2 NX GET
SET k v3 GET
TYPE k
TYPE nokey
INCR k
FOO bar
"#;

#[test]
fn smoke_matches_redis() {
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.line("FLUSHALL");
        d.script(SCRIPT);
    }
}
