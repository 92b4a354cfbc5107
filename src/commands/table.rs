//! The command table: which handler serves each command percore implements.
//!
//! Arity, flags, key positions and docs come from Redis 7.0's metadata
//! (`spec`); a row here only names the handler and how it runs. A command
//! missing here answers `-ERR unknown command`, exactly as Redis does for
//! names it does not know.

// Families whose rows are still being filled in may be unused for a while.
#[allow(unused_imports)]
use super::{
    connection as conn, hashes, keys, lists, server, sets, strings, transactions as txn, zsets,
    Exec,
};

/// Every implemented command and subcommand (`parent|sub`), with its handler.
pub static COMMANDS: &[(&str, Exec)] = &[
    // connection
    ("ping", Exec::Conn(conn::ping)),
    ("echo", Exec::Conn(conn::echo)),
    ("select", Exec::ConnBarrier(conn::select)),
    ("auth", Exec::ConnBarrier(conn::auth)),
    ("hello", Exec::ConnBarrier(conn::hello)),
    ("quit", Exec::ConnBarrier(conn::quit)),
    ("reset", Exec::ConnBarrier(conn::reset)),
    ("client|id", Exec::Conn(conn::client_id)),
    ("client|setname", Exec::ConnBarrier(conn::client_setname)),
    ("client|getname", Exec::Conn(conn::client_getname)),
    ("client|info", Exec::Conn(conn::client_info)),
    ("client|list", Exec::Multi(conn::client_list)),
    ("client|kill", Exec::Multi(conn::client_kill)),
    ("client|no-evict", Exec::ConnBarrier(conn::client_no_evict)),
    ("client|reply", Exec::ConnBarrier(conn::client_reply)),
    ("client|help", Exec::Conn(conn::client_help)),
    // strings
    ("get", Exec::Shard(strings::get)),
    ("set", Exec::Shard(strings::set)),
    ("setnx", Exec::Shard(strings::setnx)),
    ("setex", Exec::Shard(strings::setex)),
    ("psetex", Exec::Shard(strings::psetex)),
    ("getset", Exec::Shard(strings::getset)),
    ("getdel", Exec::Shard(strings::getdel)),
    ("getex", Exec::Shard(strings::getex)),
    ("mget", Exec::Keys(strings::mget, strings::mget_multi)),
    ("mset", Exec::Keys(strings::mset, strings::mset_multi)),
    ("msetnx", Exec::Keys(strings::msetnx, strings::msetnx_multi)),
    ("append", Exec::Shard(strings::append)),
    ("strlen", Exec::Shard(strings::strlen)),
    ("getrange", Exec::Shard(strings::getrange)),
    ("substr", Exec::Shard(strings::getrange)),
    ("setrange", Exec::Shard(strings::setrange)),
    ("incr", Exec::Shard(strings::incr)),
    ("decr", Exec::Shard(strings::decr)),
    ("incrby", Exec::Shard(strings::incrby)),
    ("decrby", Exec::Shard(strings::decrby)),
    ("incrbyfloat", Exec::Shard(strings::incrbyfloat)),
    ("lcs", Exec::Keys(strings::lcs, strings::lcs_multi)),
    // keyspace
    ("del", Exec::Keys(keys::del, keys::del_multi)),
    ("unlink", Exec::Keys(keys::del, keys::del_multi)),
    ("exists", Exec::Keys(keys::exists, keys::exists_multi)),
    ("touch", Exec::Keys(keys::touch, keys::touch_multi)),
    ("type", Exec::Shard(keys::type_)),
    ("expire", Exec::Shard(keys::expire)),
    ("pexpire", Exec::Shard(keys::pexpire)),
    ("expireat", Exec::Shard(keys::expireat)),
    ("pexpireat", Exec::Shard(keys::pexpireat)),
    ("ttl", Exec::Shard(keys::ttl)),
    ("pttl", Exec::Shard(keys::pttl)),
    ("expiretime", Exec::Shard(keys::expiretime)),
    ("pexpiretime", Exec::Shard(keys::pexpiretime)),
    ("persist", Exec::Shard(keys::persist)),
    ("rename", Exec::Keys(keys::rename, keys::rename_multi)),
    ("renamenx", Exec::Keys(keys::renamenx, keys::renamenx_multi)),
    ("copy", Exec::Keys(keys::copy, keys::copy_multi)),
    ("move", Exec::Shard(keys::move_)),
    ("keys", Exec::Multi(keys::keys)),
    ("scan", Exec::Multi(keys::scan)),
    ("randomkey", Exec::Multi(keys::randomkey)),
    ("object|encoding", Exec::Shard(keys::object_encoding)),
    ("object|freq", Exec::Shard(keys::object_freq)),
    ("object|idletime", Exec::Shard(keys::object_idletime)),
    ("object|refcount", Exec::Shard(keys::object_refcount)),
    ("object|help", Exec::Conn(keys::object_help)),
    ("dbsize", Exec::Multi(keys::dbsize)),
    ("flushdb", Exec::Multi(keys::flushdb)),
    ("flushall", Exec::Multi(keys::flushall)),
    ("swapdb", Exec::Multi(keys::swapdb)),
    // hashes (commands/hashes.rs)
    // -- end of hashes
    //
    // lists (and blocking) (commands/lists.rs)
    // -- end of lists (and blocking)
    //
    // sets (commands/sets.rs)
    // -- end of sets
    //
    // sorted sets (commands/zsets.rs)
    // -- end of sorted sets
    //
    // transactions (commands/transactions.rs)
    ("multi", Exec::ConnBarrier(txn::multi)),
    ("exec", Exec::Multi(txn::exec)),
    ("discard", Exec::Multi(txn::discard)),
    ("watch", Exec::Multi(txn::watch)),
    ("unwatch", Exec::Multi(txn::unwatch)),
    // -- end of transactions
    //
    // server
    ("command", Exec::Conn(server::command)),
    // COMMAND runs without a subcommand too; its subcommands are rows so that
    // dispatch checks them and commandstats counts them one by one, as Redis.
    ("command|count", Exec::Conn(server::command)),
    ("command|docs", Exec::Conn(server::command)),
    ("command|getkeys", Exec::Conn(server::command)),
    ("command|getkeysandflags", Exec::Conn(server::command)),
    ("command|help", Exec::Conn(server::command)),
    ("command|info", Exec::Conn(server::command)),
    ("command|list", Exec::Conn(server::command)),
    ("info", Exec::Multi(server::info)),
    ("config|get", Exec::Conn(server::config_get)),
    ("config|set", Exec::Multi(server::config_set)),
    ("config|resetstat", Exec::Multi(server::config_resetstat)),
    ("config|help", Exec::Conn(server::config_help)),
    ("time", Exec::Conn(server::time)),
    ("debug", Exec::Multi(server::debug)),
    ("shutdown", Exec::Multi(server::shutdown)),
];
