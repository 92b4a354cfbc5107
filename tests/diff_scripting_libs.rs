//! Redis 7.0's Lua libraries and API additions against redis-server 7.0.15, percore on 4
//! shards: cjson (round trips, nesting limits, invalid numbers, configuration, error texts),
//! cmsgpack (every type, streams, malformed input), struct (every format), redis.setresp
//! with RESP3 conversions both ways, redis.set_repl (the AOF), and the read-only sandbox.

mod common;

use common::{Diff, Resp, Server};

/// A diff between redis-server and a 4-shard percore, both empty.
fn diff() -> (Server, Server) {
    (Server::redis(&[]), Server::percore(4, &[]))
}

/// EVAL `body` with no keys and `args`, compared exactly.
fn ev(d: &mut Diff, body: &str, args: &[&str]) -> Resp {
    let mut a = vec!["EVAL", body, "0"];
    a.extend_from_slice(args);
    d.check(&a)
}

/// `call` run under pcall, its results (or error) flattened to strings, compared exactly.
fn pc(d: &mut Diff, call: &str, args: &[&str]) -> Resp {
    let body = format!(
        "local r = {{pcall(function() return {call} end)}} \
         local o = {{}} for i = 1, select('#', unpack(r)) do o[i] = tostring(r[i]) end \
         return {{#r, table.concat(o, '|')}}"
    );
    ev(d, &body, args)
}

#[test]
fn cjson_encode() {
    let (r, p) = diff();
    let mut d = Diff::new(&r, &p);
    for e in [
        "1",
        "-1.5",
        "1/3",
        "1e300",
        "123456789012345678",
        "2^53",
        "0.1",
        "'plain'",
        "'q\"b\\\\s/n\\n\\r\\t\\b\\f\\0\\1\\31\\127\\128\\255'",
        "true",
        "false",
        "nil",
        "cjson.null",
        "{}",
        "{1,2,3}",
        "{1,'a',true,false,{}}",
        "{1,2,nil,4}",
        "{[1]=1,[10]=10}",
        "{[1]=1,[11]=11}",
        "{[2]=2,[3]=3}",
        "{[0]=1}",
        "{[-1]=1}",
        "{[1.5]=1}",
        "{a=1}",
        "{a={b={c={1,{d=false}}}}}",
        "{[1]=1,a=2}",
        "{[1/0]=1}",
        "1/0",
        "-1/0",
        "0/0",
        "{[true]=1}",
        "{[{}]=1}",
        "function() end",
        "coroutine.create(function() end)",
        "redis",
        "string.rep('x', 1000)",
        // Numbers near 0 (mlua rounds them to 0 on the way to Rust; the library must not).
        "-0.0",
        "-1e-300",
        "5e-324",
        "{-0.0, 1e-310, {a=-1e-20}}",
    ] {
        pc(&mut d, &format!("cjson.encode({e})"), &[]);
    }
    // Argument checks, raised errors (not under pcall) and the positions they carry.
    for body in [
        "return cjson.encode()",
        "return cjson.encode(1, 2)",
        "return cjson.encode(function() end)",
        "return cjson.encode({[1]=1,[100]=2})",
        "local e = cjson.encode\nreturn e(0/0)",
        "return cjson:encode({})",
    ] {
        ev(&mut d, body, &[]);
    }
}

#[test]
fn cjson_decode() {
    let (r, p) = diff();
    let mut d = Diff::new(&r, &p);
    let roundtrip =
        "local ok, v = pcall(cjson.decode, ARGV[1]) if not ok then return {'error', v} end \
                     if type(v) == 'table' then return {'table', cjson.encode(v)} end \
                     return {type(v), tostring(v)}";
    for j in [
        "1",
        "-0",
        "1.5e3",
        "1E+2",
        "0.1e-2",
        "123456789012345678901234567890",
        "1e400",
        "-1e400",
        "0x1F",
        "-0x10",
        "+1",
        "01",
        "1.",
        "-.5",
        ".5",
        "-",
        "1e",
        "inf",
        "-inf",
        "Infinity",
        "nan",
        "NaN",
        "-nan",
        "true",
        "false",
        "null",
        "tru",
        "nul",
        "nil",
        "\"\"",
        "\"abc\"",
        "\"a\\/b\\bc\\fd\\re\\tf\\ng\\\"h\\\\\"",
        "\"\\u00e9\\u20ac\\ud83d\\ude00\"",
        "\"\\u0000x\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\x\"",
        "\"abc",
        "\"tab\there\"",
        "[]",
        "{}",
        "[1,2,3]",
        "[1,[2,[3,[4]]]]",
        "[1,2,]",
        "[,1]",
        "[1 2]",
        "[1,null,3]",
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
        "{\"a\":1,\"a\":2}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{1:2}",
        "{\"a\":}",
        "{\"a\":1",
        "  [ 1 , 2 ]  ",
        "[1] x",
        "[1]]",
        "",
        " ",
        "\t\r\n",
        "@",
        "{\"k\":[{\"x\":1.25,\"y\":-3}],\"z\":\"\\u0041\"}",
    ] {
        ev(&mut d, roundtrip, &[j]);
    }
    // Embedded NULs: input ends at the first one; UTF-16/32 is refused.
    ev(&mut d, roundtrip, &["[1]\0garbage"]);
    ev(&mut d, roundtrip, &["\0[1]"]);
    ev(&mut d, roundtrip, &["[\0"]);
    ev(&mut d, roundtrip, &["\"a\0b\""]);
    // Raised errors and argument checks.
    for body in [
        "return cjson.decode('[1,2')",
        "return cjson.decode()",
        "return cjson.decode('1', '2')",
        "return cjson.decode({})",
        "return cjson.decode(nil)",
        "return cjson.decode(12)",
        "return cjson.decode('{\"a\":[1,2,{\"b\":null}]}').a[3].b == cjson.null",
        "local t = cjson.decode('[1,2,3]') t[4] = 4 return t",
    ] {
        ev(&mut d, body, &[]);
    }
}

#[test]
fn cjson_nesting_limits() {
    let (r, p) = diff();
    let mut d = Diff::new(&r, &p);
    for n in [999, 1000, 1001, 1200] {
        let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let objects = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        for j in [arrays, objects, "[".repeat(n)] {
            pc(&mut d, "#cjson.encode(cjson.decode(ARGV[1]))", &[&j]);
        }
    }
    for body in [
        // Self-references stop at the default depth (1000).
        "local t = {} t[1] = t return cjson.encode(t)",
        "local t = {} t.a = t return cjson.encode(t)",
        "local t = {} for i = 1, 999 do t = {t} end return #cjson.encode(t)",
        "local t = {} for i = 1, 1000 do t = {t} end return cjson.encode(t)",
        // Raised limits (a private instance): Lua's C stack (8000 slots) is the next limit.
        "local c = cjson.new() c.encode_max_depth(100000) local t = {} t[1] = t return c.encode(t)",
        "local c = cjson.new() c.encode_max_depth(100000) local t = {} t.a = t return c.encode(t)",
        "local c = cjson.new() c.decode_max_depth(100000) return #c.encode(c.decode(string.rep('[', 5000) .. string.rep(']', 5000)))",
        "local c = cjson.new() c.decode_max_depth(100000) return c.decode(string.rep('[', 9000))",
        "local c = cjson.new() c.decode_max_depth(100000) return c.decode(string.rep('{\"a\":', 5000))",
        "local c = cjson.new() c.encode_max_depth(3) return c.encode({{{1}}})",
        "local c = cjson.new() c.encode_max_depth(3) return c.encode({{{{1}}}})",
        "local c = cjson.new() c.decode_max_depth(2) return c.decode('[[1]]')",
        "local c = cjson.new() c.decode_max_depth(2) return c.decode('[[[1]]]')",
        "local c = cjson.new() c.decode_max_depth(2) return c.decode('{\"a\":{\"b\":{}}}')",
    ] {
        ev(&mut d, body, &[]);
    }
}

#[test]
fn cjson_configuration() {
    let (r, p) = diff();
    let mut d = Diff::new(&r, &p);
    // Reading the settings of the shared instance (no argument) changes nothing.
    pc(
        &mut d,
        "cjson.encode_max_depth(), cjson.decode_max_depth(), cjson.encode_number_precision(), \
         cjson.encode_keep_buffer(), cjson.encode_invalid_numbers(), cjson.decode_invalid_numbers(), \
         cjson.encode_sparse_array()",
        &[],
    );
    pc(
        &mut d,
        "cjson._NAME, cjson._VERSION, cjson.version, type(cjson.null), tostring(cjson.null)",
        &[],
    );
    // Setting them on private instances.
    for call in [
        "c.encode_number_precision(3), c.encode(1/3), c.encode(12345.678)",
        "c.encode_number_precision(1), c.encode(0.15), c.encode(25)",
        "c.encode_number_precision(14), c.encode(1/3)",
        "c.encode_number_precision(0)",
        "c.encode_number_precision(15)",
        "c.encode_number_precision('5'), c.encode(math.pi)",
        "c.encode_number_precision('x')",
        "c.encode_number_precision(2.9), c.encode(math.pi)",
        "c.encode_number_precision(1, 2)",
        "c.encode_invalid_numbers(true), c.encode({0/0, 1/0, -1/0})",
        "c.encode_invalid_numbers('null'), c.encode({0/0, 1/0, -1/0})",
        "c.encode_invalid_numbers('on'), c.encode(1/0)",
        "c.encode_invalid_numbers('off'), pcall(c.encode, 1/0)",
        "c.encode_invalid_numbers(false)",
        "c.encode_invalid_numbers('maybe')",
        "c.encode_invalid_numbers(1)",
        "c.decode_invalid_numbers(false), pcall(c.decode, 'nan'), pcall(c.decode, '0x10'), pcall(c.decode, '+1'), pcall(c.decode, '01'), c.decode('-1')",
        "c.decode_invalid_numbers('off'), pcall(c.decode, 'inf'), pcall(c.decode, '-Infinity')",
        "c.decode_invalid_numbers('on'), c.decode('0x10')",
        "c.decode_invalid_numbers('null')",
        "c.encode_keep_buffer(false), c.encode({1}), c.encode_keep_buffer()",
        "c.encode_keep_buffer('on'), c.encode_keep_buffer('off'), c.encode_keep_buffer('yes')",
        "c.encode_sparse_array(true), c.encode({[1]=1,[100]=2})",
        "c.encode_sparse_array(false, 0), c.encode({[1]=1,[100]=2})",
        "c.encode_sparse_array(nil, 1, 0), pcall(c.encode, {[2]=1})",
        "c.encode_sparse_array(true, 3, 5), c.encode({[1]=1,[6]=6}), c.encode({[1]=1,[2]=2,[6]=6})",
        "c.encode_sparse_array(1)",
        "c.encode_sparse_array(true, -1)",
        "c.encode_sparse_array(true, 1, -1)",
        "c.encode_sparse_array(true, 1, 2, 3)",
        "c.encode_max_depth(0)",
        "c.encode_max_depth(-5)",
        "c.encode_max_depth(2^31)",
        "c.encode_max_depth(2^32 + 7)",
        "c.decode_max_depth('x')",
        "c.decode_max_depth(1), pcall(c.decode, '[[1]]'), c.decode('[1]')[1]",
        "c.new ~= nil, c.new().encode_max_depth()",
        "cjson.encode_max_depth()",
    ] {
        pc(&mut d, &format!("(function() local c = cjson.new() return {call} end)()"), &[]);
    }
    // Direct calls report their own names and argument positions.
    for body in [
        "local c = cjson.new() return c.encode_max_depth(1, 2)",
        "local c = cjson.new() return c.encode_invalid_numbers({})",
        "local c = cjson.new() return c.decode_max_depth(0)",
        "local c = cjson.new() return c:encode_max_depth()",
    ] {
        ev(&mut d, body, &[]);
    }
}

#[test]
fn cmsgpack_types_and_streams() {
    let (r, p) = diff();
    let mut d = Diff::new(&r, &p);
    let hex = "local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end ";
    for e in [
        "0",
        "1",
        "127",
        "128",
        "255",
        "256",
        "65535",
        "65536",
        "4294967295",
        "4294967296",
        "2^53",
        "2^63",
        "-2^63",
        "2^64",
        "-1",
        "-32",
        "-33",
        "-128",
        "-129",
        "-32768",
        "-32769",
        "-2147483648",
        "-2147483649",
        "0.5",
        "-0.25",
        "0.1",
        "1e300",
        "1/0",
        "-1/0",
        "0/0",
        "''",
        "'a'",
        "string.rep('x', 31)",
        "string.rep('x', 32)",
        "string.rep('x', 255)",
        "string.rep('x', 256)",
        "string.rep('x', 65535)",
        "string.rep('x', 65536)",
        "true",
        "false",
        "nil",
        "cjson.null",
        "redis.call",
        "{}",
        "{1,2,3}",
        "{1,2,nil,4}",
        "{[1]=1,[3]=3}",
        "{[0]=1}",
        "{[1.5]=1}",
        "{a=1}",
        "{a={b={1,2}}, c=true}",
        "{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16}",
        "(function() local t = {} for i = 1, 70000 do t[i] = i % 3 end return t end)()",
        "(function() local t = {} for i = 1, 20 do t['k'..i] = i end return t end)()",
        "(function() local t = {} for i = 1, 70000 do t['k'..i] = 1 end return t end)()",
        "(function() local t = {} for i = 1, 20 do t = {t} end return t end)()",
        "(function() local t = {} t[1] = t return t end)()",
        "1, 'two', {3}, nil, false",
        "-0.0",
        "1e-300",
        "-5e-324, {1e-300}",
    ] {
        // The packed bytes (prefix), then the unpacked values re-packed.
        pc(
            &mut d,
            &format!(
                "(function() {hex} local s = cmsgpack.pack({e}) \
                 local t = {{cmsgpack.unpack(s)}} \
                 return #s, hex(s):sub(1, 120), select('#', cmsgpack.unpack(s)), \
                 hex(cmsgpack.pack(unpack(t))):sub(1, 120) end)()"
            ),
            &[],
        );
    }
    // Hand-made input: every first byte, truncated and malformed input.
    let mut inputs: Vec<Vec<u8>> = (0u8..=255)
        .map(|b| vec![b, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        .collect();
    inputs.extend(
        [
            &b""[..],
            b"\xcd\x01",
            b"\xdb\x00\x00\x00\x05ab",
            b"\xd9\x05a",
            b"\xda\x00\x01",
            b"\x81\xc0\x01",
            b"\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01",
            b"\x92\x01",
            b"\xdc\x00\x02\x01\x02\x03",
            b"\xde\x00\x01\x01\x02",
            b"\xdf\x00\x00\x00\x01\xa1k\x93\x01\x02\x03",
            b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff",
            b"\xd3\x80\x00\x00\x00\x00\x00\x00\x01",
            b"\xca\x3f\xc0\x00\x00",
            b"\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a",
            b"\xc4\x01a",
            b"\xc1",
            b"\x93\x01\xc0\x03",
        ]
        .iter()
        .map(|s| s.to_vec()),
    );
    inputs.push(vec![1; 300]);
    for input in &inputs {
        let mut a: Vec<&[u8]> = vec![
            b"EVAL",
            b"local r = {pcall(cmsgpack.unpack, ARGV[1])} local o = {} \
              for i = 1, select('#', unpack(r)) do local v = r[i] \
              o[i] = type(v) == 'table' and cjson.encode(v) or tostring(v) end \
              return {#r, table.concat(o, '|')}",
            b"0",
        ];
        a.push(input);
        d.check(&a);
    }
    // Streams of values: unpack_one and unpack_limit with offsets.
    for call in [
        "cmsgpack.unpack_one(s)",
        "cmsgpack.unpack_one(s, 0)",
        "cmsgpack.unpack_one(s, 1)",
        "cmsgpack.unpack_one(s, 3)",
        "cmsgpack.unpack_one(s, #s - 1)",
        "cmsgpack.unpack_one(s, #s)",
        "cmsgpack.unpack_one(s, #s + 1)",
        "cmsgpack.unpack_one(s, -1)",
        "cmsgpack.unpack_one(s, '2')",
        "cmsgpack.unpack_one(s, 'x')",
        "cmsgpack.unpack_limit(s, 2)",
        "cmsgpack.unpack_limit(s, 2, 1)",
        "cmsgpack.unpack_limit(s, 100)",
        "cmsgpack.unpack_limit(s, 0)",
        "cmsgpack.unpack_limit(s, 0, 1)",
        "cmsgpack.unpack_limit(s, -1)",
        "cmsgpack.unpack_limit(s, 1, -3)",
        "cmsgpack.unpack_limit(s)",
        "cmsgpack.unpack_limit(s, {})",
        "cmsgpack.unpack(s)",
        "cmsgpack.unpack()",
        "cmsgpack.unpack({})",
        "cmsgpack.unpack(123)",
        "cmsgpack.pack()",
        "cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._COPYRIGHT, cmsgpack._DESCRIPTION",
    ] {
        pc(
            &mut d,
            &format!(
                "(function() local s = cmsgpack.pack(1, 'two', {{3}}, 4.5, 'five') \
                 local r = {{{call}}} for i = 1, #r do if type(r[i]) == 'table' then \
                 r[i] = cjson.encode(r[i]) end end return unpack(r) end)()"
            ),
            &[],
        );
    }
    ev(&mut d, "return cmsgpack.pack()", &[]);
    ev(&mut d, "return cmsgpack.unpack('\\205')", &[]);
}

#[test]
fn struct_formats() {
    let (r, p) = diff();
    let mut d = Diff::new(&r, &p);
    for call in [
        "struct.pack('>i', 5)",
        "struct.pack('<i', -5)",
        "struct.pack('bBhHlLTiI', -1, 255, -2, 65535, -3, 4, 5, 6, 7)",
        "struct.pack('>bBhHlLTiI', -1, 255, -2, 65535, -3, 4, 5, 6, 7)",
        "struct.pack('i1i2i3i5i7i8', 1, 2, 3, 4, 5, 6)",
        "struct.pack('i3', 2^23)",
        "struct.pack('I16', 1)",
        "struct.pack('>I16', -1)",
        "struct.pack('i32', -2)",
        "struct.pack('i33', 1)",
        "struct.pack('i99999999999', 1)",
        "struct.pack('!4 b i', 1, 2)",
        "struct.pack('!3 b i', 1, 2)",
        "struct.pack('!b d', 1, 2)",
        "struct.pack('!2 b d b h', 1, 2, 3, 4)",
        "struct.pack('!16 b d', 1, 2)",
        "struct.pack('>d<f', 1.5, -2.25)",
        "struct.pack('d', 0.1)",
        "struct.pack('f', 0.1)",
        "struct.pack('f', 1e300)",
        "struct.pack('d', 0/0)",
        "struct.pack('d', -0.0)",
        "struct.pack('>d', 5e-324)",
        "struct.pack('f', 1e-30)",
        "struct.pack('ddd', 1, -1e-300, 2)",
        "struct.pack('c5', 'abcde')",
        "struct.pack('c5', 'abc')",
        "struct.pack('c0', 'abc')",
        "struct.pack('c2', 'abc')",
        "struct.pack('c', 'abc')",
        "struct.pack('s', 'ab')",
        "struct.pack('s', 'a\\0b')",
        "struct.pack('ss', 'a', 'bc')",
        "struct.pack('x')",
        "struct.pack('xxbx', 7)",
        "struct.pack('q', 1)",
        "struct.pack('i')",
        "struct.pack('ii', 1)",
        "struct.pack('i', 'x')",
        "struct.pack('i', '12')",
        "struct.pack('i', '0x10')",
        "struct.pack('s', 12)",
        "struct.pack('s', {})",
        "struct.pack('B', 256)",
        "struct.pack('B', -1)",
        "struct.pack('b', 1e20)",
        "struct.pack('I', -1)",
        "struct.pack('l', 2^63)",
        "struct.pack('L', 2^63 + 2^62)",
        "struct.pack('L', 2^64)",
        "struct.pack('L', 0/0)",
        "struct.pack('l', -2^64)",
        "struct.pack('i', 2.7)",
        "struct.pack('i', -2.7)",
        "struct.pack()",
        "struct.pack(5)",
        "struct.pack('  ')",
        "struct.pack('i\\0i', 1, 2)",
        "struct.size('i')",
        "struct.size('bBhHlLTiIfdx')",
        "struct.size('!8 b d')",
        "struct.size('!b d')",
        "struct.size('!4 b d')",
        "struct.size('s')",
        "struct.size('c0')",
        "struct.size('c9')",
        "struct.size('bq')",
        "struct.size('i40')",
        "struct.size('!5')",
        "struct.size('>< ')",
        "struct.size()",
        "struct.unpack('>i', struct.pack('>i', -7))",
        "struct.unpack('bBhH', struct.pack('bBhH', -1, 200, -300, 60000))",
        "struct.unpack('i', 'ab')",
        "struct.unpack('i', 'abcdefgh', 5)",
        "struct.unpack('i', 'abcdefgh', 6)",
        "struct.unpack('i', 'abcd', 0)",
        "struct.unpack('i', 'abcd', -1)",
        "struct.unpack('i', 'abcd', 'x')",
        "struct.unpack('s', 'ab')",
        "struct.unpack('sB', 'ab\\0c')",
        "struct.unpack('Bc0', string.char(3) .. 'xyzw')",
        "struct.unpack('Bc0', string.char(9) .. 'ab')",
        "struct.unpack('c1c0', '3abcd')",
        "struct.unpack('c1c0', 'xabcd')",
        "struct.unpack('c0', 'xyz')",
        "struct.unpack('>d', struct.pack('>d', 0.1))",
        "struct.unpack('<d', struct.pack('<d', -1e300))",
        "struct.unpack('f', struct.pack('f', 0.1))",
        "struct.unpack('I8', string.rep(string.char(255), 8))",
        "struct.unpack('i8', string.rep(string.char(255), 8))",
        "struct.unpack('I9', string.rep(string.char(255), 9))",
        "struct.unpack('i16', string.rep(string.char(128), 16))",
        "struct.unpack('I3', 'abc')",
        "struct.unpack('>I3', 'abc')",
        "struct.unpack('!4 bi', struct.pack('!4 bi', 1, 2))",
        "struct.unpack('x')",
        "struct.unpack('i', 5)",
        "struct.unpack('xxb', 'abc')",
        "struct.unpack('q', 'abc')",
        "struct.unpack('c2 c2', 'abcd', 2)",
    ] {
        pc(&mut d, call, &[]);
    }
    for body in [
        "return struct.pack('c5', 'abc')",
        "return struct.unpack('i', 'ab')",
        "return struct.size('s')",
        "return struct.pack('i33', 1)",
    ] {
        ev(&mut d, body, &[]);
    }
}

#[test]
fn setresp_and_resp3_conversions() {
    let (r, p) = diff();
    for hello3 in [false, true] {
        let mut d = Diff::new(&r, &p);
        if hello3 {
            // The HELLO replies describe each server: sent to both, not compared.
            d.redis.cmd(&["HELLO", "3"]);
            d.percore.cmd(&["HELLO", "3"]);
        }
        d.line("FLUSHALL");
        d.line("HSET h a 1 b 2");
        d.line("SADD s x y");
        d.line("ZADD z 1.5 m 2 n");
        d.line("RPUSH l a b c");
        d.line("SET str v");
        for body in [
            // Replies as the script sees them after redis.setresp(3).
            "redis.setresp(3) return redis.call('hgetall', 'h')",
            "redis.setresp(3) local r = redis.call('hgetall', 'h') return {type(r.map), r.map.a, r.map.b}",
            "redis.setresp(3) return redis.call('smembers', 's')",
            "redis.setresp(3) local r = redis.call('smembers', 's') return {r.set.x, r.set.y, r.set.z}",
            "redis.setresp(3) return redis.call('zscore', 'z', 'm')",
            "redis.setresp(3) local r = redis.call('zscore', 'z', 'm') return {type(r), r.double}",
            "redis.setresp(3) return redis.call('zrange', 'z', 0, -1, 'withscores')",
            "redis.setresp(3) return redis.call('zrange', 'z', 0, -1)",
            "redis.setresp(3) return redis.call('get', 'nokey')",
            "redis.setresp(3) return redis.call('get', 'nokey') == nil",
            "redis.setresp(3) return redis.call('exists', 'h')",
            "redis.setresp(3) return redis.call('lrange', 'l', 0, -1)",
            "redis.setresp(3) return redis.call('hget', 'h', 'a')",
            "redis.setresp(3) return redis.call('ping')",
            "redis.setresp(3) return redis.pcall('incr', 'h')",
            "redis.setresp(3) return redis.call('lpos', 'l', 'zz')",
            "redis.setresp(3) return redis.call('hrandfield', 'nokey', 1)",
            "redis.setresp(3) return redis.call('object', 'encoding', 'nokey')",
            "redis.setresp(3) return redis.call('zpopmin', 'nokey')",
            "redis.setresp(3) return redis.call('zincrby', 'z', 1, 'm')",
            "redis.setresp(3) return redis.call('incrbyfloat', 'fl', '1.5')",
            "redis.setresp(3) return redis.call('zmscore', 'z', 'm', 'zz')",
            "redis.setresp(3) redis.setresp(2) return redis.call('hgetall', 'h')",
            "redis.setresp(2) return redis.call('zscore', 'z', 'n')",
            "redis.setresp(3) local t = redis.call('hgetall', 'h') redis.setresp(2) return {t.map.a, redis.call('hgetall', 'h')}",
            // Booleans follow the script's protocol; special tables the client's.
            "return true",
            "return false",
            "redis.setresp(3) return true",
            "redis.setresp(3) return false",
            "redis.setresp(3) return {true, false, 1}",
            "return {double=3.5}",
            "return {double=1/0}",
            "return {double=-1/0}",
            "return {double=0.1}",
            "return {double='x'}",
            "return {big_number='123456789012345678901234567890'}",
            "return {big_number='12\\r\\n3'}",
            "return {verbatim_string={format='txt', string='hello'}}",
            "return {verbatim_string={format='mkd', string='a\\r\\nb'}}",
            "return {verbatim_string={format='txt'}}",
            "return {map={a=1}}",
            "return {map={}}",
            "return {set={a=true}}",
            "return {set={}}",
            "return {map={a={set={x=true}}}}",
            "return {map={a={double=1.5}}}",
            "return {ok='a\\r\\nb'}",
            "return {ok='a\\0b'}",
            "return {err='My error'}",
            "return {1, {map={k='v'}}, {set={m=true}}, {double=2.5}, nil, 3}",
            // Errors of the API itself.
            "return redis.setresp()",
            "return redis.setresp(4)",
            "return redis.setresp(1)",
            "return redis.setresp('x')",
            "return redis.setresp('3')",
            "return redis.setresp(2.5)",
            "return redis.setresp(3, 3)",
        ] {
            ev(&mut d, body, &[]);
        }
        // A script's protocol does not outlive it.
        ev(&mut d, "redis.setresp(3) return 1", &[]);
        ev(&mut d, "return redis.call('hgetall', 'h')", &[]);
    }
}

#[test]
fn redis_api_additions() {
    let (r, p) = diff();
    let mut d = Diff::new(&r, &p);
    for body in [
        "return redis.REDIS_VERSION",
        "return redis.REDIS_VERSION_NUM",
        "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}",
        "return redis.replicate_commands()",
        "return redis.breakpoint()",
        "return redis.debug('x', 1)",
        "return redis.debug()",
        "return redis.set_repl(redis.REPL_ALL)",
        "return redis.set_repl(redis.REPL_NONE)",
        "return redis.set_repl()",
        "return redis.set_repl(1, 2)",
        "return redis.set_repl(4)",
        "return redis.set_repl(-1)",
        "return redis.set_repl('x')",
        "return redis.set_repl('2')",
        // Numbers given to redis.call are sent as %.17g.
        "redis.call('set', 'fk', 0.1) return redis.call('get', 'fk')",
        "redis.call('set', 'fk', 1/3) return redis.call('get', 'fk')",
        "redis.call('set', 'fk', 2^60) return redis.call('get', 'fk')",
        "redis.call('set', 'fk', -2.5) return redis.call('get', 'fk')",
        "redis.call('set', 'fk', 100) return redis.call('get', 'fk')",
        "redis.call('set', 'fk', 1e300) return redis.call('get', 'fk')",
        "return redis.call('incrby', 'cnt', 5)",
        "return redis.call('zadd', 'zz', 1.5, 'm', 1/3, 'n')",
        "return redis.call('zrange', 'zz', 0, -1, 'withscores')",
        "local t = {} for k, v in pairs(redis) do t[#t + 1] = k .. ':' .. type(v) end table.sort(t) \
         local o = {} for _, k in ipairs(t) do if k ~= 'acl_check_cmd:function' then o[#o + 1] = k end end return o",
    ] {
        ev(&mut d, body, &[]);
    }
}

#[test]
fn set_repl_keeps_writes_out_of_the_aof() {
    let extra = ["--appendonly", "yes", "--appendfsync", "always"];
    let r = Server::redis(&extra);
    let p = Server::percore(4, &extra);
    let mut d = Diff::new(&r, &p);
    let body = "redis.set_repl(redis.REPL_NONE) redis.call('set', KEYS[1], 'quiet') \
                redis.set_repl(redis.REPL_REPLICA) redis.call('set', KEYS[2], 'replica-only') \
                redis.set_repl(redis.REPL_AOF) redis.call('set', KEYS[3], 'aof') \
                redis.set_repl(redis.REPL_ALL) redis.call('set', KEYS[4], 'all') \
                return redis.call('mget', KEYS[1], KEYS[2], KEYS[3], KEYS[4])";
    d.check(&[
        "EVAL",
        body,
        "4",
        "{t}k-none",
        "{t}k-replica",
        "{t}k-aof",
        "{t}k-all",
    ]);
    // Keys on different shards, and a later script back at the default.
    d.check(&[
        "EVAL",
        "redis.set_repl(redis.REPL_NONE) redis.call('set', KEYS[1], 'q') redis.call('set', KEYS[2], 'q') return 1",
        "2",
        "spread-a-none",
        "spread-b-none",
    ]);
    d.check(&[
        "EVAL",
        "return redis.call('set', KEYS[1], 'x')",
        "1",
        "after-default",
    ]);
    d.line("SET plain-after v");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let logged = |s: &Server| -> String {
        let mut all = Vec::new();
        if let Ok(rd) = std::fs::read_dir(s.dir.join("appendonlydir")) {
            for e in rd.flatten() {
                all.extend(std::fs::read(e.path()).unwrap_or_default());
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    };
    let (lr, lp) = (logged(&r), logged(&p));
    for key in [
        "{t}k-none",
        "{t}k-replica",
        "{t}k-aof",
        "{t}k-all",
        "spread-a-none",
        "spread-b-none",
        "after-default",
        "plain-after",
    ] {
        assert_eq!(
            lr.contains(key),
            lp.contains(key),
            "{key} logged by redis: {}, by percore: {}",
            lr.contains(key),
            lp.contains(key)
        );
    }
    assert!(!lp.contains("k-none") && lp.contains("k-aof") && lp.contains("after-default"));
}

#[test]
fn read_only_sandbox() {
    let (r, p) = diff();
    let mut d = Diff::new(&r, &p);
    for body in [
        "string.x = 1 return 1",
        "string.format = nil return 1",
        "math.pi = 3",
        "table.insert = print",
        "cjson.encode = nil",
        "cmsgpack.x = 1",
        "struct.y = 2",
        "bit.band = 3",
        "redis.call = nil",
        "redis.new_field = 1",
        "_G.x = 1",
        "_G._G.y = 1",
        "zz = 1",
        "KEYS2 = {}",
        "rawset(_G, 'zz', 1) return 1",
        "rawset(string, 'x', 1) return 1",
        "rawset(redis, 'x', 1) return 1",
        "table.insert(string, 1) return 1",
        "table.insert(_G, 'x') return 1",
        "table.remove(cjson) return 1",
        "table.sort(math) return 1",
        "setmetatable(_G, nil) return 1",
        "setmetatable(string, {}) return 1",
        "getmetatable(_G).__index = nil return 1",
        "getmetatable(_G).__newindex = function() end return 1",
        "local mt = getmetatable(_G) return {type(mt), type(mt.__index), type(mt.__newindex)}",
        "getmetatable('').__index.upper = nil return 1",
        "return pcall(function() string.x = 1 end)",
        "local ok, e = pcall(function() string.x = 1 end) return e",
        "local ok, e = pcall(rawset, _G, 'a', 1) return e",
        "return undefined_global",
        "return _G.undefined_global",
        "return rawget(_G, 'undefined_global')",
        "local t = {} t.x = 1 return t.x",
        "KEYS[1] = 'changed' return KEYS[1]",
        "ARGV[5] = 'new' return ARGV[5]",
        "local s = string s = 1 return type(string)",
        "local t = cjson.decode('{\"a\":1}') t.b = 2 return cjson.encode(t)",
        "local t = {} for k in pairs(_G) do t[#t + 1] = k end table.sort(t) \
         local o = {} for _, k in ipairs(t) do if k ~= '__redis__err__handler' then o[#o + 1] = k end end return o",
        "return {type(print), type(getfenv), type(setfenv), type(newproxy), type(loadfile), type(dofile)}",
        "local t = {} for k in pairs(string) do t[#t + 1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(math) do t[#t + 1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(table) do t[#t + 1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(cjson) do t[#t + 1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(cmsgpack) do t[#t + 1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(struct) do t[#t + 1] = k end table.sort(t) return t",
    ] {
        ev(&mut d, body, &["a1"]);
    }
    // The protection survives SCRIPT FLUSH (a fresh state is locked again).
    d.line("SCRIPT FLUSH");
    ev(&mut d, "string.x = 1", &[]);
    ev(&mut d, "return cjson.encode({1})", &[]);
}

/// The global cjson table's settings are the state's: a setting made by a
/// script holds for scripts on every core (Redis has one EVAL state) until
/// SCRIPT FLUSH; the functions' state has its own, kept across FUNCTION FLUSH.
#[test]
fn cjson_settings_shared_by_cores() {
    let (r, p) = diff();
    // Connections (and keyed scripts) land on several cores.
    let mut ds: Vec<Diff> = (0..8).map(|_| Diff::new(&r, &p)).collect();
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let check = |ds: &mut Vec<Diff>| {
        for (d, k) in ds.iter_mut().zip(keys) {
            ev(d, "return cjson.encode({1.23456, {{{1}}}})", &[]);
            d.check(&["EVAL", "return cjson.encode({3.14159, KEYS[1]})", "1", k]);
            ev(
                d,
                "return {cjson.encode_number_precision(), cjson.encode_max_depth()}",
                &[],
            );
            ev(d, "return {cjson.encode_sparse_array()}", &[]);
            ev(
                d,
                "return {cjson.decode_invalid_numbers(), cjson.encode_invalid_numbers()}",
                &[],
            );
            d.check(&["FCALL", "enc", "0"]);
        }
    };
    let d = &mut ds[0];
    d.line("SCRIPT FLUSH");
    d.line("FUNCTION FLUSH");
    let lib = "#!lua name=cj
redis.register_function('enc', function() return cjson.encode({1.23456}) end)
redis.register_function('prec', function(_, a) return cjson.encode_number_precision(a[1]) end)";
    d.check(&["FUNCTION", "LOAD", lib]);
    check(&mut ds);
    let d = &mut ds[0];
    ev(d, "return cjson.encode_number_precision(3)", &[]);
    ev(d, "return cjson.encode_max_depth(2)", &[]);
    ev(d, "return {cjson.encode_sparse_array(true, 3, 5)}", &[]);
    ev(d, "return cjson.encode_invalid_numbers('null')", &[]);
    ev(d, "return cjson.decode_invalid_numbers(false)", &[]);
    // A cjson.new() instance has its own settings.
    ev(d, "return cjson.new().encode({1.23456})", &[]);
    check(&mut ds);
    let d = &mut ds[3];
    d.check(&["FCALL", "prec", "0", "5"]);
    check(&mut ds);
    ds[5].line("SCRIPT FLUSH");
    check(&mut ds);
    let d = &mut ds[2];
    d.line("FUNCTION FLUSH");
    d.check(&["FUNCTION", "LOAD", lib]);
    check(&mut ds);
}
