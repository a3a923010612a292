use super::*;

#[test]
fn proxy_urls_parse_with_and_without_credentials() {
    let plain = Proxy::parse("http://proxy.corp:3128").unwrap();
    assert_eq!(plain, Proxy { host: "proxy.corp".into(), port: 3128, credentials: None });
    let bare = Proxy::parse("proxy.corp").unwrap();
    assert_eq!((bare.host.as_str(), bare.port), ("proxy.corp", 80));
    let auth = Proxy::parse("HTTP://al%40ice:p%3Ass@10.0.0.1:8080/").unwrap();
    assert_eq!(auth.host, "10.0.0.1");
    assert_eq!(auth.credentials, Some(("al@ice".into(), "p:ss".into())));
    let v6 = Proxy::parse("http://[fd00::1]:3128").unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("fd00::1", 3128));
    assert_eq!(v6.to_string(), "[fd00::1]:3128");
}

#[test]
fn bad_proxy_urls_are_refused_without_leaking_the_password() {
    for bad in ["https://p:443", "socks5://p:1080", "http://:3128", "http://p:0", "http://p:99999", "http://p:x"] {
        assert!(Proxy::parse(bad).is_err(), "{bad}");
    }
    let err = Proxy::parse("http://bob:hunter2@p:bad").unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("bob:***@p:bad"), "{err}");
    let debug = format!("{:?}", Proxy::parse("http://bob:hunter2@p:1").unwrap());
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn connect_requests_name_the_target_and_carry_basic_auth() {
    let proxy = Proxy::parse("http://alice:s3cret@p:3128").unwrap();
    assert_eq!(
        proxy.connect_request("gw.example.com", 443),
        "CONNECT gw.example.com:443 HTTP/1.1\r\nHost: gw.example.com:443\r\n\
         Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n"
    );
    let anonymous = Proxy::parse("p:3128").unwrap();
    assert_eq!(anonymous.connect_request("::1", 3080), "CONNECT [::1]:3080 HTTP/1.1\r\nHost: [::1]:3080\r\n\r\n");
}

#[test]
fn a_200_reply_opens_the_tunnel_at_the_end_of_its_head() {
    let reply = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: squid\r\n\r\n";
    assert_eq!(parse_reply(reply), Ok(Some(reply.len())));
    assert_eq!(parse_reply(b"HTTP/1.0 200 OK\r\n\r\n\x16\x03"), Ok(Some(19)));
    assert_eq!(parse_reply(b"HTTP/1.1 200 OK\n\n"), Ok(Some(17)));
}

#[test]
fn incomplete_replies_ask_for_more() {
    assert_eq!(parse_reply(b""), Ok(None));
    assert_eq!(parse_reply(b"HTT"), Ok(None));
    assert_eq!(parse_reply(b"HTTP/1.1 200 OK\r\nVia: x\r\n"), Ok(None));
}

#[test]
fn other_statuses_are_clear_errors_with_the_status() {
    let err = parse_reply(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").unwrap_err();
    assert!(matches!(err, ProxyError::Refused { status: 407, .. }));
    let text = err.to_string();
    assert!(text.contains("HTTP 407 Proxy Authentication Required"), "{text}");
    assert!(text.contains("user:password"), "{text}");
    let text = parse_reply(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap_err().to_string();
    assert!(text.contains("503"), "{text}");
    assert!(matches!(parse_reply(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(ProxyError::NotHttp(_))));
    assert!(matches!(parse_reply(b"HTTP/1.1 abc nope\r\n\r\n"), Err(ProxyError::NotHttp(_))));
    assert!(matches!(parse_reply(b"garbage"), Err(ProxyError::NotHttp(_))));
}

#[test]
fn reply_heads_are_bounded() {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    while head.len() < MAX_REPLY_HEAD {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(parse_reply(&head), Err(ProxyError::TooLong));
}

#[test]
fn no_proxy_matches_hosts_domains_ports_ips_and_cidrs() {
    let list = "localhost, .corp.example, gw.test:3080,10.0.0.0/8, ::1, 192.168.1.7,[fd00::5]";
    for (host, port) in [
        ("localhost", 1),
        ("LOCALHOST", 1),
        ("corp.example", 443),
        ("a.b.corp.example", 443),
        ("gw.test", 3080),
        ("10.1.2.3", 443),
        ("::1", 3080),
        ("[::1]", 3080),
        ("192.168.1.7", 1),
        ("fd00::5", 1),
    ] {
        assert!(no_proxy_matches(list, host, port), "{host}:{port}");
    }
    for (host, port) in
        [("evilcorp.example", 443), ("gw.test", 443), ("11.0.0.1", 443), ("192.168.1.70", 1), ("example", 1)]
    {
        assert!(!no_proxy_matches(list, host, port), "{host}:{port}");
    }
    assert!(no_proxy_matches("example.com", "sub.example.com", 1));
    assert!(no_proxy_matches("*", "anything", 1));
    assert!(!no_proxy_matches("", "anything", 1));
}

#[test]
fn the_explicit_proxy_wins_then_the_environment_unless_exempt() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let vars: &'static [(&str, &str)] = &[("HTTPS_PROXY", "http://envproxy:3128"), ("NO_PROXY", ".internal")];
    let chosen = choose(Some("http://flag:1"), env(vars), "gw.internal", 443).unwrap().unwrap();
    assert_eq!(chosen.host, "flag");
    assert_eq!(choose(None, env(vars), "gw.internal", 443), Ok(None));
    assert_eq!(choose(None, env(vars), "gw.example.com", 443).unwrap().unwrap().host, "envproxy");
    let lower: &'static [(&str, &str)] = &[("https_proxy", "lower:8080"), ("no_proxy", "*")];
    assert_eq!(choose(None, env(lower), "gw", 443), Ok(None));
    let lower_only: &'static [(&str, &str)] = &[("https_proxy", "lower:8080"), ("HTTPS_PROXY", " ")];
    assert_eq!(choose(None, env(lower_only), "gw", 443).unwrap().unwrap().port, 8080);
    assert_eq!(choose(None, env(&[]), "gw", 443), Ok(None));
}
