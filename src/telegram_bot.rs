//! The Telegram bot's side of the conversation: sending login confirmations, editing
//! them when decided or expired, and handling updates (`/start <token>` links an
//! account, a button tap decides an attempt). Updates arrive by `getUpdates` long
//! polling in [`BotService`] (reconnecting with backoff), or by webhook on the portal.
//! The Bot API client itself is [`crate::notify::telegram`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use teloxide::payloads::{GetUpdatesSetters, SetWebhookSetters};
use teloxide::requests::Requester;
use teloxide::types::{AllowedUpdate, Update, UpdateKind, User};

use crate::audit;
use crate::basics::now;
use crate::config::TelegramMode;
use crate::mfa::telegram::{self as tg, Action, Attempt, Decision, LinkOutcome, Refused, Status};
use crate::notify::telegram::TelegramBot;

use crate::texts::telegram::TelegramTexts;
use crate::texts::texts_for;

/// What the bot needs of the running gateway: what the factors need, and the
/// brute-force limiter ("This wasn't me" counts as a failed login). The state
/// implements it.
pub trait Services: crate::mfa::Services {
    fn limiter(&self) -> &crate::auth::limiter::Limiter;
}

fn telegram_texts(lang: Option<&str>) -> &'static TelegramTexts {
    texts_for(lang).telegram
}

/// The confirmation message of an attempt.
fn login_text(t: &TelegramTexts, a: &Attempt) -> String {
    let time = crate::texts::moment(t.lang, a.created_at).text;
    let text = t
        .bot_login
        .replace("{site}", &a.site)
        .replace("{time}", &time)
        .replace("{ip}", &a.ip)
        .replace(
            "{browser}",
            &crate::texts::describe_device(t.lang, &a.user_agent),
        );
    format!("{}\n{text}", crate::texts::brand().name)
}

/// Sends the confirmation of a new attempt to every linked account; returns how many
/// messages went out (0 = Telegram could not be reached).
pub async fn send_attempt(state: &dyn Services, bot: &TelegramBot, attempt: &Attempt) -> usize {
    let t = telegram_texts(Some(&attempt.lang));
    let text = login_text(t, attempt);
    let numbers: Vec<(String, String)> = attempt
        .buttons
        .iter()
        .filter_map(|b| match b.action {
            Action::Number(n) => Some((n.to_string(), format!("{}:{}", attempt.id, b.token))),
            Action::NotMe => None,
        })
        .collect();
    let not_me: Vec<(String, String)> = attempt
        .buttons
        .iter()
        .filter(|b| b.action == Action::NotMe)
        .map(|b| {
            (
                t.bot_not_me.to_string(),
                format!("{}:{}", attempt.id, b.token),
            )
        })
        .collect();
    let accounts = tg::accounts(state.store().as_ref(), &attempt.username)
        .await
        .unwrap_or_default();
    let mut sent = Vec::new();
    for account in accounts {
        if let Ok(message_id) = bot
            .send(
                account.chat_id,
                &text,
                vec![numbers.clone(), not_me.clone()],
            )
            .await
        {
            sent.push(tg::Sent {
                chat_id: account.chat_id,
                message_id,
            });
        }
    }
    if let Err(e) = tg::record_sent(state.store().as_ref(), &attempt.id, &sent).await {
        tracing::error!(error = %e, "recording telegram messages failed");
    }
    sent.len()
}

/// Edits every message of a decided or expired attempt; `decided_in` is the chat the
/// decision came from.
async fn edit_all(bot: &TelegramBot, attempt: &Attempt, decided_in: Option<i64>) {
    let t = telegram_texts(Some(&attempt.lang));
    for sent in &attempt.messages {
        let here = decided_in == Some(sent.chat_id);
        let text = match (attempt.status, here) {
            (Status::Confirmed | Status::Used, true) => t.bot_confirmed,
            (Status::Confirmed | Status::Used, false) => t.bot_elsewhere_confirmed,
            (Status::Refused(Refused::WrongNumber), true) => t.bot_refused_wrong,
            (Status::Refused(Refused::NotMe), true) => t.bot_refused_not_me,
            (Status::Refused(_), false) => t.bot_elsewhere_refused,
            (Status::Expired | Status::Pending, _) => t.bot_expired,
        };
        bot.edit(sent.chat_id, sent.message_id, text).await;
    }
}

/// Expires an attempt if still pending, editing its messages and waking its browser.
pub async fn expire_attempt(state: &dyn Services, bot: &TelegramBot, attempt_id: &str) {
    match tg::expire(state.store().as_ref(), attempt_id).await {
        Ok(Some(attempt)) => {
            audit!("telegram_expired", user = attempt.username, ip = attempt.ip);
            bot.waiters.wake(attempt_id);
            edit_all(bot, &attempt, None).await;
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "expiring a telegram attempt failed"),
    }
}

fn account_of(user: &User, chat_id: i64, now: u64) -> tg::Account {
    let name = match &user.last_name {
        Some(last) => format!("{} {last}", user.first_name),
        None => user.first_name.clone(),
    };
    tg::Account {
        telegram_id: user.id.0 as i64,
        chat_id,
        name,
        handle: user.username.clone(),
        linked_at: now,
    }
}

/// Handles one update from Telegram.
pub async fn handle_update(state: &dyn Services, bot: &TelegramBot, update: Update) {
    match update.kind {
        UpdateKind::Message(message) => {
            let Some(from) = message.from.as_ref() else {
                return;
            };
            let t = telegram_texts(from.language_code.as_deref());
            let chat_id = message.chat.id.0;
            let text = message.text().unwrap_or("");
            let Some(token) = text.strip_prefix("/start").map(str::trim) else {
                return;
            };
            if token.is_empty() {
                let _ = bot.send(chat_id, t.bot_hello, Vec::new()).await;
                return;
            }
            let account = account_of(from, chat_id, now());
            let label = account.label();
            let reply = match tg::link_finish(state, token, account, now()).await {
                Ok(LinkOutcome::Linked { username, .. }) => {
                    bot.waiters.wake(&format!("link:{username}"));
                    if let Ok(Some(user)) = state.store().get_user(&username).await {
                        let texts = texts_for(from.language_code.as_deref());
                        crate::mfa::security_notice(
                            state.store().as_ref(),
                            state.mailer(),
                            state.telegram().as_ref(),
                            &user,
                            texts,
                            &crate::texts::fill(texts.telegram.notice_linked, &label),
                        )
                        .await;
                    }
                    t.bot_linked.replace("{user}", &username)
                }
                Ok(LinkOutcome::AlreadyYours) => t.bot_already.to_string(),
                Ok(LinkOutcome::OtherUser) => {
                    audit!("telegram_link_refused_other_user", telegram = label);
                    t.bot_other_user.to_string()
                }
                Ok(LinkOutcome::BadToken) => t.bot_bad_token.to_string(),
                Err(e) => {
                    tracing::error!(error = %e, "telegram link failed");
                    return;
                }
            };
            let _ = bot.send(chat_id, &reply, Vec::new()).await;
        }
        UpdateKind::CallbackQuery(query) => {
            let t = telegram_texts(query.from.language_code.as_deref());
            if let Some(token) = query.data.as_deref().and_then(|d| {
                d.strip_prefix(crate::auth::devices::NOT_ME_PREFIX)?
                    .strip_prefix(':')
            }) {
                not_me(state, bot, &query, token, t).await;
                return;
            }
            let Some((attempt_id, button)) = query.data.as_deref().and_then(|d| d.split_once(':'))
            else {
                return;
            };
            let chat_id = query.message.as_ref().map(|m| m.chat().id.0);
            let telegram_id = query.from.id.0 as i64;
            match tg::decide(state, attempt_id, button, telegram_id, now()).await {
                Ok(Decision::Decided(attempt)) => {
                    let event = match attempt.status {
                        Status::Confirmed => "telegram_confirmed",
                        Status::Refused(Refused::WrongNumber) => "telegram_refused_wrong_number",
                        _ => "telegram_refused_not_me",
                    };
                    audit!(
                        event,
                        user = attempt.username,
                        ip = attempt.ip,
                        telegram_id = telegram_id
                    );
                    if attempt.status == Status::Refused(Refused::NotMe) {
                        let ip = attempt.ip.parse().ok();
                        let keys = crate::auth::limiter::login_keys(&attempt.username, ip);
                        if let Err(e) = state.limiter().record_failure(&keys, now()).await {
                            tracing::warn!(error = %e, "could not count a denied Telegram attempt");
                        }
                        state.metrics().second_factor_failure.inc();
                    }
                    bot.waiters.wake(&attempt.id);
                    let answer = match attempt.status {
                        Status::Confirmed => t.bot_confirmed,
                        Status::Refused(Refused::WrongNumber) => t.bot_refused_wrong,
                        _ => t.bot_refused_not_me,
                    };
                    bot.answer(query.id.clone(), answer).await;
                    edit_all(bot, &attempt, chat_id).await;
                }
                Ok(Decision::Stale) => bot.answer(query.id.clone(), t.bot_stale).await,
                Ok(Decision::Foreign) => {
                    tracing::warn!(
                        telegram_id,
                        "telegram tap from an account not linked to the attempt's user ignored"
                    );
                }
                Err(e) => tracing::error!(error = %e, "telegram decision failed"),
            }
        }
        _ => {}
    }
}

/// "This was not me" under a new-device alert, tapped by an account linked to the
/// alert's user: signs the user out everywhere and forgets their trusted devices.
async fn not_me(
    state: &dyn Services,
    bot: &TelegramBot,
    query: &teloxide::types::CallbackQuery,
    token: &str,
    t: &'static TelegramTexts,
) {
    let store = state.store();
    let telegram_id = query.from.id.0 as i64;
    // Only an account linked to the alert's user may end its sessions: the token is
    // looked at before anything ends.
    let Ok(Some(owner)) = tg::owner_of(store.as_ref(), telegram_id).await else {
        tracing::warn!(
            telegram_id,
            "a not-me tap from an account linked to no user ignored"
        );
        return;
    };
    if !crate::auth::devices::not_me_is_for(store.as_ref(), token, &owner).await {
        tracing::warn!(telegram_id, "a not-me tap for another user's alert ignored");
        return bot.answer(query.id.clone(), t.bot_stale).await;
    }
    let (username, ended) = match crate::auth::devices::not_me(store.as_ref(), token).await {
        Ok(Some(found)) => found,
        Ok(None) => return bot.answer(query.id.clone(), t.bot_stale).await,
        Err(e) => return tracing::error!(error = %e, "telegram not-me failed"),
    };
    audit!(
        "sessions_ended",
        user = username,
        count = ended,
        by = "telegram_not_me",
        telegram_id = telegram_id
    );
    bot.answer(query.id.clone(), t.not_me_ended).await;
    if let Some(message) = &query.message {
        bot.edit(message.chat().id.0, message.id().0, t.not_me_ended)
            .await;
    }
}

const OFFSET_KEY: &str = "tg-offset";

/// Runs the bot: learns its name, then receives updates (polling, or registers the
/// webhook) and expires overdue attempts, until shutdown.
pub struct BotService {
    pub state: Arc<dyn Services>,
}

#[async_trait]
impl BackgroundService for BotService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let state = self.state.clone();
        let Some(bot) = state.telegram().as_ref() else {
            return;
        };
        let expiry = {
            let state = state.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                loop {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tick.tick() => {}
                    }
                    let Some(bot) = state.telegram().as_ref() else {
                        return;
                    };
                    if let Ok((due, _)) = tg::overdue(state.store().as_ref(), now()).await {
                        for id in due {
                            expire_attempt(state.as_ref(), bot, &id).await;
                        }
                    }
                }
            })
        };
        let notices = {
            let state = state.clone();
            tokio::spawn(async move {
                let Some(bot) = state.telegram().as_ref() else {
                    return;
                };
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = bot.notice_queued.notified() => {}
                        _ = tick.tick() => {}
                    }
                    bot.send_due_notices().await;
                }
            })
        };
        let mut backoff = Duration::from_millis(500);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let ready = bot.refresh_me().await
                && match bot.config.mode {
                    TelegramMode::Polling => bot.bot.delete_webhook().await.is_ok(),
                    TelegramMode::Webhook => {
                        let mut request = bot.bot.set_webhook(
                            bot.config
                                .webhook_url
                                .clone()
                                .expect("validated webhook url"),
                        );
                        if let Some(secret) = &bot.config.webhook_secret {
                            request = request.secret_token(secret.expose());
                        }
                        request
                            .allowed_updates(vec![
                                AllowedUpdate::Message,
                                AllowedUpdate::CallbackQuery,
                            ])
                            .await
                            .is_ok()
                    }
                };
            if ready {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        if bot.config.mode == TelegramMode::Polling {
            // One poller among the replicas (Telegram answers a second with 409); another
            // takes over within seconds when the leader is gone.
            while let Some(lease) = lead(&state, "telegram-polling", &mut shutdown).await {
                poll(&state, bot, &mut shutdown, lease.as_ref()).await;
                if *shutdown.borrow() {
                    break;
                }
                tracing::warn!(role = "telegram-polling", "this process no longer leads");
            }
        } else {
            let _ = shutdown.changed().await;
        }
        expiry.abort();
        notices.abort();
    }
}

/// Waits until this process leads `role`; `None` on shutdown.
async fn lead(
    state: &Arc<dyn Services>,
    role: &str,
    shutdown: &mut ShutdownWatch,
) -> Option<Arc<dyn crate::store::LeaderLease>> {
    loop {
        if let Ok(Some(lease)) = state.store().try_lead(role).await {
            tracing::info!(role, "this process now leads");
            return Some(lease);
        }
        tokio::select! {
            _ = shutdown.changed() => return None,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Long polling, for as long as `lease` holds.
async fn poll(
    state: &Arc<dyn Services>,
    bot: &TelegramBot,
    shutdown: &mut ShutdownWatch,
    lease: &dyn crate::store::LeaderLease,
) {
    let store = state.store().as_ref();
    let mut offset: i32 = crate::store::get_token(store, OFFSET_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let mut backoff = Duration::from_millis(500);
    while lease.held() {
        let request = bot
            .bot
            .get_updates()
            .offset(offset)
            .timeout(10)
            .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
        let result = tokio::select! {
            _ = shutdown.changed() => return,
            r = request => r,
        };
        match result {
            Ok(updates) => {
                bot.mark(true);
                backoff = Duration::from_millis(500);
                for update in updates {
                    offset = offset.max(update.id.0 as i32 + 1);
                    handle_update(state.as_ref(), bot, update).await;
                }
                if let Err(e) = crate::store::put_token(store, OFFSET_KEY, &offset, None).await {
                    tracing::error!(error = %e, "saving the telegram offset failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "telegram getUpdates failed");
                bot.mark(false);
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
