//! The Telegram Bot API client, through teloxide: sending, editing and answering
//! messages, learning the bot's name, a queue of notices, and the [`Waiters`] that
//! wake a browser long-polling for a decision (the std mutex there is never held across
//! an await). What the bot says and does with updates is in [`crate::telegram_bot`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use teloxide::payloads::{AnswerCallbackQuerySetters, EditMessageTextSetters, SendMessageSetters};
use teloxide::requests::Requester;
use teloxide::types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, MessageId};
use teloxide::Bot;

use crate::config::TelegramConfig;
use crate::store::{Event, Events};

/// Browsers waiting for an attempt to be decided, through the store's [`Events`]: a
/// decision published by any process on the store wakes them.
pub struct Waiters {
    events: Arc<dyn Events>,
}

/// A subscription taken before looking at an attempt, so no decision is missed.
pub struct Watch {
    events: tokio::sync::broadcast::Receiver<Event>,
}

impl Watch {
    /// Waits at most `limit` for the attempt `id` to be decided (or for the
    /// subscription to fall behind, when anything may have happened).
    pub async fn until_decided(&mut self, id: &str, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                match self.events.recv().await {
                    Ok(Event::AttemptDecided { id: decided }) if decided == id => return,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        })
        .await;
    }
}

impl Waiters {
    /// Starts watching for decisions.
    pub fn watch(&self) -> Watch {
        Watch {
            events: self.events.subscribe(),
        }
    }

    /// Wakes everyone waiting on an attempt.
    pub fn wake(&self, attempt_id: &str) {
        self.events.publish(Event::AttemptDecided {
            id: attempt_id.to_string(),
        });
    }
}

/// The store queue of security notices.
const NOTICE_QUEUE: &str = "telegram";

/// A security notice as the queue keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Notice {
    chat_id: i64,
    text: String,
    /// One inline button (label, callback data), when the notice offers an action.
    #[serde(default)]
    button: Option<(String, String)>,
}

/// The bot: the Bot API client and what gatehouse knows about it.
pub struct TelegramBot {
    pub(crate) bot: Bot,
    pub config: TelegramConfig,
    /// The bot's `@username` (from `getMe`), for deep links.
    username: RwLock<Option<String>>,
    reachable: AtomicBool,
    pub waiters: Waiters,
    /// Confirmations sent per user per hour.
    pub budget: crate::auth::limiter::Limiter,
    /// Security notices waiting to be sent (the store's `telegram` queue), drained by
    /// [`crate::telegram_bot::BotService`].
    notices: Arc<dyn crate::store::Store>,
    /// Tells this process's sender that a notice was queued.
    pub(crate) notice_queued: tokio::sync::Notify,
}

/// The bot's failure to reach Telegram.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl TelegramBot {
    pub fn new(config: TelegramConfig, store: Arc<dyn crate::store::Store>) -> Self {
        TelegramBot {
            notices: store.clone(),
            notice_queued: tokio::sync::Notify::new(),
            bot: Bot::new(config.token.expose()).set_api_url(config.api_url.clone()),
            username: RwLock::new(None),
            reachable: AtomicBool::new(false),
            waiters: Waiters {
                events: store.clone(),
            },
            budget: crate::auth::limiter::Limiter::new(
                crate::config::Regulation {
                    max_retries: config.confirmations_per_hour,
                    find_time: Duration::from_secs(3600),
                    ban_time: Duration::from_secs(3600),
                },
                store.clone(),
                "telegram",
            ),

            config,
        }
    }

    /// Queues a security notice for a chat, durably (sent in the background, never
    /// waited for).
    pub async fn notice_later(&self, chat_id: i64, text: String) {
        self.queue_notice(Notice {
            chat_id,
            text,
            button: None,
        })
        .await
    }

    /// Queues a security notice with one inline button (label, callback data).
    pub async fn notice_with_button(&self, chat_id: i64, text: String, button: (&str, String)) {
        self.queue_notice(Notice {
            chat_id,
            text,
            button: Some((button.0.to_string(), button.1)),
        })
        .await
    }

    async fn queue_notice(&self, notice: Notice) {
        let queued = match serde_json::to_vec(&notice) {
            Ok(bytes) => self.notices.enqueue(NOTICE_QUEUE, &bytes).await.map(drop),
            Err(e) => Err(e.into()),
        };
        match queued {
            Ok(()) => self.notice_queued.notify_one(),
            Err(e) => {
                tracing::error!(error = %e, "could not queue a Telegram notice; it is not sent")
            }
        }
    }

    /// The bot's username, once `getMe` has answered.
    pub fn username(&self) -> Option<String> {
        self.username
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends the notices that are due; each is acknowledged when Telegram took it or
    /// after its last try, else put back for later.
    pub(crate) async fn send_due_notices(&self) {
        let claimed = match self.notices.claim(NOTICE_QUEUE, 16, 300).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the Telegram notice queue");
                return;
            }
        };
        for item in claimed {
            let Ok(notice) = serde_json::from_slice::<Notice>(&item.payload) else {
                let _ = self.notices.ack(NOTICE_QUEUE, &item.id).await;
                continue;
            };
            let buttons = notice
                .button
                .clone()
                .map(|b| vec![vec![b]])
                .unwrap_or_default();
            let sent = self.send(notice.chat_id, &notice.text, buttons).await;
            let done = sent.is_ok() || item.attempts >= 5;
            let _ = if done {
                self.notices.ack(NOTICE_QUEUE, &item.id).await
            } else {
                let after = 5u64 << item.attempts.min(6);
                self.notices.retry(NOTICE_QUEUE, &item, after).await
            };
        }
    }

    /// Whether the last call to Telegram worked.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    pub(crate) fn mark(&self, ok: bool) {
        let was = self.reachable.swap(ok, Ordering::Relaxed);
        if was != ok {
            if ok {
                tracing::info!("telegram reachable");
            } else {
                tracing::warn!("telegram unreachable");
            }
        }
    }

    /// Asks `getMe` for the bot's username.
    pub async fn refresh_me(&self) -> bool {
        match self.bot.get_me().await {
            Ok(me) => {
                let name = me.user.username.clone();
                *self.username.write().unwrap_or_else(|e| e.into_inner()) = name;
                self.mark(true);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "telegram getMe failed");
                self.mark(false);
                false
            }
        }
    }

    /// Sends a message, with inline buttons (label, callback data) when given.
    pub async fn send(
        &self,
        chat_id: i64,
        text: &str,
        buttons: Vec<Vec<(String, String)>>,
    ) -> Result<i32, Unreachable> {
        let mut request = self.bot.send_message(ChatId(chat_id), text);
        if !buttons.is_empty() {
            request =
                request.reply_markup(InlineKeyboardMarkup::new(buttons.into_iter().map(|row| {
                    row.into_iter()
                        .map(|(label, data)| InlineKeyboardButton::callback(label, data))
                        .collect::<Vec<_>>()
                })));
        }
        match request.await {
            Ok(message) => {
                self.mark(true);
                Ok(message.id.0)
            }
            Err(e) => {
                tracing::warn!(chat_id, error = %e, "telegram sendMessage failed");
                if matches!(
                    e,
                    teloxide::RequestError::Network(_) | teloxide::RequestError::Io(_)
                ) {
                    self.mark(false);
                }
                Err(Unreachable(e.to_string()))
            }
        }
    }

    /// Replaces a message's text (and drops its buttons); failures are only logged.
    pub async fn edit(&self, chat_id: i64, message_id: i32, text: &str) {
        let request = self
            .bot
            .edit_message_text(ChatId(chat_id), MessageId(message_id), text)
            .reply_markup(InlineKeyboardMarkup::default());
        if let Err(e) = request.await {
            tracing::warn!(chat_id, message_id, error = %e, "telegram editMessageText failed");
        }
    }

    pub(crate) async fn answer(&self, callback_id: teloxide::types::CallbackQueryId, text: &str) {
        let request = self.bot.answer_callback_query(callback_id).text(text);
        if let Err(e) = request.await {
            tracing::warn!(error = %e, "telegram answerCallbackQuery failed");
        }
    }
}
