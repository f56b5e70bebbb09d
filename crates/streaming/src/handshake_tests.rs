use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

const UPGRADE_SPDY: [(&str, &str); 2] = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")];

#[test]
fn only_spdy_upgrades_are_taken() {
    assert_eq!(check_upgrade(&headers(&UPGRADE_SPDY)), Ok(()));
    assert_eq!(check_upgrade(&headers(&[("connection", "keep-alive, upgrade"), ("upgrade", "spdy/3.1")])), Ok(()));
    let missing = check_upgrade(&headers(&[("connection", "Upgrade")])).unwrap_err();
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.message, "unable to upgrade: missing upgrade headers in request");
    let websocket = check_upgrade(&headers(&[("connection", "Upgrade"), ("upgrade", "websocket")])).unwrap_err();
    assert_eq!(websocket.status, StatusCode::BAD_REQUEST);
    assert!(websocket.message.contains("SPDY/3.1 only"), "{}", websocket.message);
}

#[test]
fn the_best_protocol_the_client_offers_wins() {
    let offered = headers(&[
        (PROTOCOL_HEADER, "channel.k8s.io"),
        (PROTOCOL_HEADER, "v2.channel.k8s.io"),
        (PROTOCOL_HEADER, "v4.channel.k8s.io"),
    ]);
    assert_eq!(negotiate(&offered, &EXEC_PROTOCOLS), Ok("v4.channel.k8s.io"));
    let joined = headers(&[(PROTOCOL_HEADER, "v3.channel.k8s.io, v2.channel.k8s.io")]);
    assert_eq!(negotiate(&joined, &EXEC_PROTOCOLS), Ok("v3.channel.k8s.io"));
    let pf = headers(&[(PROTOCOL_HEADER, PORT_FORWARD_PROTOCOL)]);
    assert_eq!(negotiate(&pf, &[PORT_FORWARD_PROTOCOL]), Ok(PORT_FORWARD_PROTOCOL));
}

#[test]
fn negotiation_failures_are_upstream_shaped() {
    let none = negotiate(&HeaderMap::new(), &EXEC_PROTOCOLS).unwrap_err();
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(none.message, "unable to upgrade: X-Stream-Protocol-Version is required");
    let other = negotiate(&headers(&[(PROTOCOL_HEADER, "v5.channel.k8s.io")]), &EXEC_PROTOCOLS).unwrap_err();
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(
        other.message,
        "unable to upgrade: unable to negotiate protocol: client supports [v5.channel.k8s.io], server accepts \
         [v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]"
    );
    assert_eq!(other.headers().get_all(ACCEPTED_PROTOCOLS_HEADER).iter().count(), 4);
}

#[test]
fn the_switching_protocols_headers() {
    let response = response_headers("v4.channel.k8s.io");
    assert_eq!(response["connection"], "Upgrade");
    assert_eq!(response["upgrade"], "SPDY/3.1");
    assert_eq!(response[PROTOCOL_HEADER], "v4.channel.k8s.io");
}

fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn exec_options_are_decoded_like_the_apiserver_sends_them() {
    let options =
        ExecOptions::parse(&query(&[("command", "ls"), ("command", "-l"), ("input", "1"), ("output", "1")]), true)
            .unwrap();
    assert_eq!(
        options,
        ExecOptions { command: vec!["ls".into(), "-l".into()], stdin: true, stdout: true, ..Default::default() }
    );
    // A terminal takes stderr into stdout.
    let tty = ExecOptions::parse(&query(&[("command", "sh"), ("output", "true"), ("error", "1"), ("tty", "1")]), true)
        .unwrap();
    assert!(tty.tty && tty.stdout && !tty.stderr);
    // Attach ignores commands.
    let attach = ExecOptions::parse(&query(&[("command", "x"), ("output", "1")]), false).unwrap();
    assert!(attach.command.is_empty());
}

#[test]
fn exec_options_refusals() {
    let none = ExecOptions::parse(&query(&[("command", "ls"), ("output", "0")]), true).unwrap_err();
    assert_eq!(
        (none.status, none.message.as_str()),
        (StatusCode::BAD_REQUEST, "you must specify at least 1 of stdin, stdout, stderr")
    );
    let no_command = ExecOptions::parse(&query(&[("output", "1")]), true).unwrap_err();
    assert_eq!(no_command.message, "you must specify at least one command for the container");
}
