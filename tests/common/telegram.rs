//! A loopback stand-in for Telegram's Bot API: `POST /bot<token>/<method>` with JSON,
//! answered `{"ok": true, "result": ...}` exactly as the Bot API documents it. Tests feed
//! it updates (a `/start` message, a `callback_query`), which gatehouse's real teloxide
//! client collects with `getUpdates`, and read what the bot sent, edited and answered.
//! It can also play "Telegram is down" (connections are dropped).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

pub const TOKEN: &str = "123456789:TEST-token-abcdefghijklmnopqrstuv";
pub const BOT_ID: i64 = 123456789;
pub const BOT_USERNAME: &str = "gatehouse_test_bot";

/// A Telegram user (their private chat with the bot has the same id).
#[derive(Clone, Debug)]
pub struct TgUser {
    pub id: i64,
    pub first_name: &'static str,
    pub username: &'static str,
}

impl TgUser {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "is_bot": false,
            "first_name": self.first_name,
            "username": self.username,
            "language_code": "en"
        })
    }
    fn chat(&self) -> Value {
        json!({"id": self.id, "type": "private", "first_name": self.first_name, "username": self.username})
    }
}

/// A message the bot sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    /// Inline buttons, row by row: (label, callback data).
    pub buttons: Vec<Vec<(String, String)>>,
}

#[derive(Default)]
struct State {
    updates: Vec<Value>,
    next_update: i64,
    next_message: i64,
    sent: Vec<Sent>,
    edits: Vec<(i64, i64, String)>,
    answers: Vec<(String, String)>,
    calls: Vec<(String, Value)>,
    down: bool,
    /// `getUpdates` requests being answered now, and those refused for overlapping one.
    polling: usize,
    poll_generation: u64,
    conflicts: usize,
}

/// The fake Bot API server.
#[derive(Clone)]
pub struct FakeTelegram {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
}

/// The text fields of a `multipart/form-data` body (teloxide sends some methods, such
/// as `setWebhook`, that way), as a JSON object.
fn multipart_fields(body: &[u8], boundary: &str) -> Value {
    let text = String::from_utf8_lossy(body);
    let mut fields = serde_json::Map::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let Some(name) = head
            .split("name=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let value = value.trim_end_matches("\r\n").to_string();
        let parsed = serde_json::from_str(&value).unwrap_or(Value::String(value));
        fields.insert(name.to_string(), parsed);
    }
    Value::Object(fields)
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeTelegram {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State {
                next_update: 1000,
                next_message: 1,
                ..State::default()
            })),
            arrived: Arc::new(Notify::new()),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        fake
    }

    /// The `[telegram]` section pointing gatehouse at this server.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[telegram]\ntoken = \"{TOKEN}\"\napi_url = \"http://{}\"\n{extra}\n",
            self.addr
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    fn push(&self, body: Value) {
        let mut s = self.lock();
        let mut update = body;
        update["update_id"] = json!(s.next_update);
        s.next_update += 1;
        s.updates.push(update);
        drop(s);
        self.arrived.notify_waiters();
    }

    /// The user sends `/start <token>` to the bot (what the deep link does).
    pub fn push_start(&self, user: &TgUser, token: &str) {
        let text = format!("/start {token}");
        self.push(json!({"message": {
            "message_id": 9000 + user.id % 1000,
            "date": 1_700_000_000,
            "chat": user.chat(),
            "from": user.json(),
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}]
        }}));
    }

    /// The user taps an inline button of a message the bot sent to `chat`.
    pub fn push_tap(&self, user: &TgUser, sent: &Sent, data: &str) {
        self.push(json!({"callback_query": {
            "id": format!("cb-{}-{}", user.id, sent.message_id),
            "from": user.json(),
            "message": {
                "message_id": sent.message_id,
                "date": 1_700_000_000,
                "chat": {"id": sent.chat_id, "type": "private", "first_name": "x"},
                "from": {"id": BOT_ID, "is_bot": true, "first_name": "Gatehouse", "username": BOT_USERNAME},
                "text": sent.text
            },
            "chat_instance": "42",
            "data": data
        }}));
    }

    /// How many `getUpdates` overlapped another (the older one was answered 409).
    pub fn conflicts(&self) -> usize {
        self.lock().conflicts
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    pub fn edits(&self) -> Vec<(i64, i64, String)> {
        self.lock().edits.clone()
    }

    pub fn answers(&self) -> Vec<(String, String)> {
        self.lock().answers.clone()
    }

    /// Every Bot API call received: (method in lower case, parameters).
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.lock().calls.clone()
    }

    /// Waits until `check` finds something in what the bot did.
    pub async fn wait_for<T>(&self, what: &str, check: impl Fn(&FakeTelegram) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited 15 s for {what}; sent: {:?}; edits: {:?}",
                self.sent(),
                self.edits()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last message sent to a chat whose text contains `needle`.
    pub async fn message_to(&self, chat_id: i64, needle: &str) -> Sent {
        self.wait_for(&format!("a message to {chat_id} with {needle:?}"), |f| {
            f.sent()
                .into_iter()
                .rev()
                .find(|m| m.chat_id == chat_id && m.text.contains(needle))
        })
        .await
    }

    async fn serve(&self, mut stream: tokio::net::TcpStream) {
        loop {
            let Some((text, body)) = super::read_http_request(&mut stream).await else {
                return;
            };
            if self.lock().down {
                return;
            }
            let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
            let boundary = super::header_of(&text, "content-type")
                .and_then(|v| v.split("boundary=").nth(1))
                .map(|b| b.trim().trim_matches('"').to_string());
            let params: Value = match boundary {
                Some(b) => multipart_fields(&body, &b),
                None => serde_json::from_slice(&body).unwrap_or(json!({})),
            };
            let (status, answer) = self.answer(&path, params).await;
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    async fn answer(&self, path: &str, params: Value) -> (&'static str, String) {
        let Some(rest) = path.strip_prefix(&format!("/bot{TOKEN}/")) else {
            return (
                "401 Unauthorized",
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}).to_string(),
            );
        };
        let method = rest.to_ascii_lowercase();
        self.lock().calls.push((method.clone(), params.clone()));
        let result = match method.as_str() {
            "getme" => json!({
                "id": BOT_ID, "is_bot": true, "first_name": "Gatehouse", "username": BOT_USERNAME,
                "can_join_groups": false, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "can_connect_to_business": false,
                "has_main_web_app": false
            }),
            "deletewebhook" | "setwebhook" => json!(true),
            "getupdates" => {
                // As Telegram does: one poller at a time. A newer `getUpdates` ends
                // one still waiting, which is answered 409 Conflict.
                let mine = {
                    let mut s = self.lock();
                    if s.polling > 0 {
                        s.conflicts += 1;
                    }
                    s.polling += 1;
                    s.poll_generation += 1;
                    s.poll_generation
                };
                struct Polling<'a>(&'a FakeTelegram);
                impl Drop for Polling<'_> {
                    fn drop(&mut self) {
                        self.0.lock().polling -= 1;
                    }
                }
                let _polling = Polling(self);
                self.arrived.notify_waiters();
                let conflict = || {
                    (
                        "409 Conflict",
                        json!({"ok": false, "error_code": 409, "description": "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}).to_string(),
                    )
                };
                let offset = params["offset"].as_i64().unwrap_or(0);
                let hold = params["timeout"].as_u64().unwrap_or(0).min(2);
                let arrived = self.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                let pending = |s: &mut State| {
                    s.updates.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                    s.updates.clone()
                };
                let now = pending(&mut self.lock());
                if now.is_empty() && hold > 0 {
                    let _ = tokio::time::timeout(Duration::from_secs(hold), arrived).await;
                }
                if self.lock().poll_generation != mine {
                    return conflict();
                }
                if self.lock().down {
                    return ("502 Bad Gateway", String::new());
                }
                // Not in the tail expression: its lock would outlive `_polling`, whose
                // drop locks too.
                let updates = pending(&mut self.lock());
                json!(updates)
            }
            "sendmessage" => {
                let chat_id = params["chat_id"].as_i64().unwrap_or(0);
                let text = params["text"].as_str().unwrap_or("").to_string();
                let buttons = params["reply_markup"]["inline_keyboard"]
                    .as_array()
                    .map(|rows| {
                        rows.iter()
                            .map(|row| {
                                row.as_array()
                                    .unwrap()
                                    .iter()
                                    .map(|b| {
                                        (
                                            b["text"].as_str().unwrap_or("").to_string(),
                                            b["callback_data"].as_str().unwrap_or("").to_string(),
                                        )
                                    })
                                    .collect()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut s = self.lock();
                let message_id = s.next_message;
                s.next_message += 1;
                s.sent.push(Sent {
                    chat_id,
                    message_id,
                    text: text.clone(),
                    buttons,
                });
                json!({
                    "message_id": message_id,
                    "date": 1_700_000_000,
                    "chat": {"id": chat_id, "type": "private", "first_name": "x"},
                    "from": {"id": BOT_ID, "is_bot": true, "first_name": "Gatehouse", "username": BOT_USERNAME},
                    "text": text
                })
            }
            "editmessagetext" => {
                let chat_id = params["chat_id"].as_i64().unwrap_or(0);
                let message_id = params["message_id"].as_i64().unwrap_or(0);
                let text = params["text"].as_str().unwrap_or("").to_string();
                self.lock().edits.push((chat_id, message_id, text.clone()));
                json!({
                    "message_id": message_id,
                    "date": 1_700_000_000,
                    "edit_date": 1_700_000_100,
                    "chat": {"id": chat_id, "type": "private", "first_name": "x"},
                    "from": {"id": BOT_ID, "is_bot": true, "first_name": "Gatehouse", "username": BOT_USERNAME},
                    "text": text
                })
            }
            "answercallbackquery" => {
                self.lock().answers.push((
                    params["callback_query_id"].as_str().unwrap_or("").to_string(),
                    params["text"].as_str().unwrap_or("").to_string(),
                ));
                json!(true)
            }
            other => {
                return (
                    "404 Not Found",
                    json!({"ok": false, "error_code": 404, "description": format!("Not Found: method {other} not found")}).to_string(),
                )
            }
        };
        ("200 OK", json!({"ok": true, "result": result}).to_string())
    }
}

/// The attempt id a waiting second-step page polls for.
pub fn attempt_of(page: &super::Page) -> String {
    page.body
        .split("/2fa/telegram/wait?attempt=")
        .nth(1)
        .expect("the waiting page")
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// The number a waiting second-step page shows, to be tapped in Telegram.
pub fn number_on(page: &super::Page) -> String {
    page.body
        .split("id=\"telegram-number\" aria-live=\"polite\">")
        .nth(1)
        .expect("the number on the page")
        .split('<')
        .next()
        .unwrap()
        .to_string()
}
