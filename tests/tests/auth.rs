//! Client keys: missing, wrong and right keys, under both drivers.

use busbar_tests::{Busbar, Client, DRIVERS};

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
shards = 1
[providers.builtin]
protocol = "openai"
mock = { tokens = 2 }
[models.mock]
provider = "builtin"
[[keys]]
name = "app"
key_env = "AUTH_TEST_KEY"
"#;

#[test]
fn keys_are_checked() {
    for d in DRIVERS {
        let b = Busbar::start(CONFIG, d, &[("AUTH_TEST_KEY", "bb-right")]);
        let mut c = Client::connect(b.addr);
        let body = r#"{"model":"mock","messages":[]}"#;
        let r = c.post_json("/v1/chat/completions", body, &[]);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["code"], "missing_api_key");
        assert_eq!(r.json()["error"]["type"], "authentication_error");
        let r = c.post_json(
            "/v1/chat/completions",
            body,
            &[("Authorization", "Bearer bb-wrong")],
        );
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
        let r = c.get("/v1/models", &[("Authorization", "Basic bb-right")]);
        assert_eq!(r.status, 401);
        let r = c.post_json(
            "/v1/chat/completions",
            body,
            &[("Authorization", "Bearer bb-right")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let r = c.get("/v1/models", &[("authorization", "bearer bb-right")]);
        assert_eq!(r.status, 200);
        // Health needs no key.
        assert_eq!(c.get("/healthz", &[]).status, 200);
        b.stop();
    }
}
