//! A small Chrome DevTools Protocol client for browser tests: starts Debian's headless
//! Chromium with `--remote-debugging-pipe` (the shell maps the pipe onto fds 3 and 4),
//! and speaks CDP's NUL-separated JSON messages over it. Enough to open pages, click,
//! type, evaluate scripts, add a virtual WebAuthn authenticator and take screenshots.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A running headless Chromium with one page attached.
pub struct Chromium {
    child: Child,
    input: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    shot_count: usize,
}

impl Chromium {
    /// Starts Chromium with a fresh profile and opens a blank page. Screenshots go to
    /// `shots`.
    pub fn launch(shots: &Path) -> Self {
        assert!(
            Path::new(CHROMIUM).exists(),
            "browser tests need Debian's chromium package (apt-get install chromium)"
        );
        let profile = tempfile::tempdir().unwrap();
        let flags = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-pipe",
            "--window-size=900,1100",
        ]
        .join(" ");
        let script = format!(
            "exec {CHROMIUM} {flags} --user-data-dir={} about:blank 3<&0 4>&1 0</dev/null 1>/dev/null",
            profile.path().display()
        );
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(output);
            loop {
                let mut buf = Vec::new();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        buf.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        std::fs::create_dir_all(shots).unwrap();
        for old in std::fs::read_dir(shots).unwrap().flatten() {
            let _ = std::fs::remove_file(old.path());
        }
        let mut browser = Chromium {
            child,
            input,
            messages,
            next_id: 0,
            session: String::new(),
            _profile: profile,
            shots: shots.to_path_buf(),
            shot_count: 0,
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_send(session, method, params)
            .unwrap_or_else(|error| panic!("CDP {method} failed: {error}"))
    }

    /// Sends a command; `Err` carries CDP's error (e.g. the page navigated meanwhile).
    fn try_send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.input.write_all(&bytes).unwrap();
        self.input.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(reply) if reply["id"] == json!(id) => {
                    if let Some(error) = reply.get("error") {
                        return Err(error.to_string());
                    }
                    return Ok(reply["result"].clone());
                }
                Ok(_event) => continue,
                Err(RecvTimeoutError::Timeout) => panic!("CDP {method}: no answer in 30 s"),
                Err(RecvTimeoutError::Disconnected) => panic!("CDP {method}: chromium exited"),
            }
        }
    }

    /// A command for the attached page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Evaluates a script expression in the page; returns its value (promises awaited).
    /// Retried briefly while the page is between two documents.
    pub fn eval(&mut self, expression: &str) -> Value {
        let session = self.session.clone();
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let mut tries = 0;
        let result = loop {
            match self.try_send(Some(&session), "Runtime.evaluate", params.clone()) {
                Ok(result) => break result,
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("CDP Runtime.evaluate failed: {error}"),
            }
        };
        if let Some(e) = result.get("exceptionDetails") {
            panic!("script `{expression}` threw: {e}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until a script expression is true once the page has loaded; `what` says
    /// what is awaited when it times out.
    pub fn wait_for(&mut self, expression: &str, what: &str) {
        let check = format!("document.readyState === 'complete' && !!({expression})");
        let deadline = Instant::now() + Duration::from_secs(20);
        let session = self.session.clone();
        loop {
            // While the page navigates the evaluation may fail: that is "not yet".
            let ok = self
                .try_send(
                    Some(&session),
                    "Runtime.evaluate",
                    json!({"expression": check, "returnByValue": true}),
                )
                .unwrap_or_default()
                .get("result")
                .and_then(|r| r.get("value"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if ok {
                return;
            }
            if Instant::now() > deadline {
                let url = self.eval("location.href");
                let text = self.eval("document.body ? document.body.innerText : ''");
                self.screenshot("timeout");
                panic!("waited 20 s for {what}; at {url}: {text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens a URL and waits for it to load.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        std::thread::sleep(Duration::from_millis(100));
        self.wait_for("true", url);
    }

    /// Clicks the first element matching a CSS selector (a real click event).
    pub fn click(&mut self, selector: &str) {
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.scrollIntoView(); e.click(); return true; }})()",
            sel = json!(selector)
        ));
        assert_eq!(found, json!(true), "no element {selector} to click");
    }

    /// Types a value into the input matching a CSS selector.
    pub fn fill(&mut self, selector: &str, value: &str) {
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.focus(); e.value = {val}; e.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()",
            sel = json!(selector),
            val = json!(value)
        ));
        assert_eq!(found, json!(true), "no input {selector} to fill");
    }

    /// The page's visible text.
    pub fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn url(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG of the page as `NN-name.png` in the screenshot folder.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        use base64::Engine;
        self.shot_count += 1;
        // Retried briefly while the page is between two documents.
        let session = self.session.clone();
        let mut tries = 0;
        let shot = loop {
            match self.try_send(
                Some(&session),
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            ) {
                Ok(shot) => break shot,
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("CDP Page.captureScreenshot failed: {error}"),
            }
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        let path = self
            .shots
            .join(format!("{:02}-{name}.png", self.shot_count));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Shows pages as a screen `width` px wide (a phone below 600) in the light or dark
    /// colour scheme, asking for `language` first.
    pub fn emulate(&mut self, width: u32, dark: bool, language: &str) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}),
        );
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": if dark { "dark" } else { "light" }}]}),
        );
        self.call("Network.enable", json!({}));
        self.call(
            "Network.setExtraHTTPHeaders",
            json!({"headers": {"Accept-Language": language}}),
        );
    }

    /// Removes the browser's cookies named `name` (as closing a browser drops a session
    /// cookie).
    pub fn delete_cookie(&mut self, name: &str, url: &str) {
        self.call("Network.enable", json!({}));
        self.call("Network.deleteCookies", json!({"name": name, "url": url}));
    }

    /// Runs axe-core (`source`: its `axe.min.js`) on the page; the violations, each as
    /// "rule (impact): selectors".
    pub fn axe(&mut self, source: &str) -> Vec<String> {
        self.eval(&format!("if (!window.axe) {{ {source} }}; true"));
        let found = self.eval(
            "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v =>              v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(', ')))",
        );
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the page is wider than the screen (a phone must not scroll sideways).
    pub fn overflows(&mut self) -> bool {
        self.eval("document.documentElement.scrollWidth > window.innerWidth + 1")
            .as_bool()
            .unwrap_or(false)
    }

    /// Adds a virtual platform authenticator with resident keys and user verification;
    /// returns its id. It answers only while "presence" is on ([`Self::presence`]):
    /// Chromium's virtual authenticator would otherwise also answer the login page's
    /// autofill (conditional) request by itself, which a real user never does unasked.
    pub fn add_virtual_authenticator(&mut self) -> String {
        self.call("WebAuthn.enable", json!({"enableUI": false}));
        let added = self.call(
            "WebAuthn.addVirtualAuthenticator",
            json!({"options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
                "automaticPresenceSimulation": false
            }}),
        );
        added["authenticatorId"].as_str().unwrap().to_string()
    }

    /// Turns the simulated user's touch on or off.
    pub fn presence(&mut self, authenticator: &str, on: bool) {
        self.call(
            "WebAuthn.setAutomaticPresenceSimulation",
            json!({"authenticatorId": authenticator, "enabled": on}),
        );
    }

    /// The credentials the virtual authenticator holds.
    pub fn credentials(&mut self, authenticator: &str) -> Vec<Value> {
        let got = self.call(
            "WebAuthn.getCredentials",
            json!({"authenticatorId": authenticator}),
        );
        got["credentials"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
