//! The command line (clap): `serve`, `demo`, `config check`, `user …`, `sessions …`.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::admin::{self, Command};
use crate::auth::password::Passwords;
use crate::config::{self, Config, LogFormat};
use crate::error::{Error, Result};
use crate::state::AppState;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A password and second-factor login in front of any web panel"
)]
struct Cli {
    /// Configuration file (default: config/gatehouse.toml when present).
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Run gatehouse with the configuration.
    Serve,
    /// Run a demo: proxy mode in front of a built-in stand-in panel, fresh data, user `demo`.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The demo user's email address (to receive real mail when `[smtp]` is set).
        #[arg(long, default_value = "demo@example.com")]
        email: String,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Manage sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCmd,
    },
    /// The keys the store was used with.
    Keys {
        #[command(subcommand)]
        command: KeysCmd,
    },
    /// Move the store between backends.
    Storage {
        #[command(subcommand)]
        command: StorageCmd,
    },
    /// Fill the store with users and signed sessions for bench/run.sh (server stopped).
    #[command(hide = true)]
    BenchSeed {
        #[arg(long, default_value_t = 1000)]
        users: usize,
        #[arg(long, default_value_t = 100_000)]
        sessions: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate the configuration and print it, secrets masked.
    Check,
}

#[derive(Subcommand)]
enum StorageCmd {
    /// Copy users, second factors, sessions and tokens from one store into an empty one,
    /// with every server on both stopped: `--from sled:DIR --to postgres:URL` (or the
    /// other way).
    Copy {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Accept the configured session secret and encryption key as the store's own after
    /// changing them on purpose (server stopped).
    Accept,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user; the password is read from standard input.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long = "name", default_value = "")]
        display_name: String,
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (read from standard input); ends their sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user and end their sessions.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// Delete a user and their sessions.
    Delete { name: String },
    /// Show a user, their second factors and sessions.
    Show { name: String },
    /// Switch off every second factor of a user and delete their backup codes (support desk).
    #[command(name = "reset-2fa")]
    Reset2fa { name: String },
}

#[derive(Subcommand)]
enum SessionsCmd {
    /// List active sessions.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke one session by id, or all of a user's.
    Revoke {
        /// As `sessions list` prints it (an id may start with `-`).
        #[arg(allow_hyphen_values = true)]
        id: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
}

/// Minimum length of a password set from the command line.
pub const MIN_PASSWORD_LEN: usize = 8;

fn read_password(password_stdin: bool) -> Result<String> {
    if !password_stdin {
        return Err(Error::Invalid(
            "pass the password on standard input with --password-stdin".into(),
        ));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "the password must be at least {MIN_PASSWORD_LEN} characters long"
        )));
    }
    Ok(password)
}

/// Initialises logging: text or JSON, level from config unless `RUST_LOG` is set.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level))
        // Audit lines are kept whatever else RUST_LOG or the configuration quiets.
        .add_directive("audit=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A store named on the command line: `sled:DIR` (a data directory) or `postgres:URL`.
async fn open_endpoint(flag: &str, spec: &str) -> Result<std::sync::Arc<dyn crate::store::Store>> {
    use crate::store::{KvStore, PgStore, SledStore};
    if let Some(dir) = spec.strip_prefix("sled:") {
        return Ok(std::sync::Arc::new(KvStore::new(SledStore::open(
            std::path::Path::new(dir),
        )?)?));
    }
    if spec.starts_with("postgres:") {
        let url = spec.strip_prefix("postgres:").unwrap_or(spec);
        let url = if url.starts_with("//") {
            format!("postgres:{url}")
        } else {
            url.to_string()
        };
        return Ok(std::sync::Arc::new(
            PgStore::connect(&url, 4, std::time::Duration::from_secs(1)).await?,
        ));
    }
    Err(crate::error::Error::Invalid(format!(
        "{flag}: expected sled:DIR or postgres:URL, got {spec:?}"
    )))
}

/// Runs an admin command through the server's socket, or on the store directly.
async fn admin(config: &Config, command: Command) -> Result<String> {
    if matches!(config.storage, config::StorageBackend::Sled) {
        if let Some(result) = admin::send(&config.data_dir, &command) {
            return result;
        }
    }
    let store = crate::state::open_store(config, false).await?;
    admin::execute(store.as_ref(), command).await
}

fn run(cli: Cli) -> Result<()> {
    let path = cli.config.as_deref();
    match cli.command {
        Top::Demo { listen, email } => {
            init_logging(LogFormat::Text, "warn,audit=info");
            crate::demo::run(path, &listen, &email)
        }
        Top::Serve => {
            let config = config::load(path)?;
            init_logging(config.log_format, &config.log_level);
            crate::server::check_listeners(&config)?;
            // Set up on the lasting runtime: pingora runs its own once serving.
            let state = crate::basics::block_on_lasting(async {
                let state = AppState::open(config).await?;
                if state.store.list_users().await?.is_empty() {
                    tracing::warn!("the store has no users, so nobody can sign in: add one with `gatehouse user add NAME --password-stdin`");
                }
                Ok::<_, crate::error::Error>(state)
            })?;
            crate::server::run(state, None);
            Ok(())
        }
        _ => {
            // A change made here, not through a server, still leaves its audit line.
            init_logging(LogFormat::Text, "warn,audit=info");
            crate::basics::block_on(run_now(cli))
        }
    }
}

/// Runs a command; the server and the demo start their own runtimes (see [`run`]).
async fn run_now(cli: Cli) -> Result<()> {
    let path = cli.config.as_deref();
    match cli.command {
        Top::Demo { .. } | Top::Serve => unreachable!("run handles these"),
        Top::Config {
            command: ConfigCmd::Check,
        } => {
            let raw = config::extract(&config::figment(path))?;
            raw.clone().validate()?;
            println!("# configuration is valid\n{}", config::render_masked(&raw));
            Ok(())
        }
        Top::User { command } => {
            let config = config::load(path)?;
            let hash = |password: String| Passwords::new(&config.password)?.hash_now(&password);
            let command = match command {
                UserCmd::Add {
                    name,
                    email,
                    display_name,
                    groups,
                    password_stdin,
                } => Command::UserAdd {
                    username: admin::valid_username(&name)?,
                    email,
                    display_name,
                    groups: groups
                        .into_iter()
                        .map(|g| g.trim().to_string())
                        .filter(|g| !g.is_empty())
                        .collect(),
                    password_hash: hash(read_password(password_stdin)?)?,
                },
                UserCmd::Passwd {
                    name,
                    password_stdin,
                } => Command::UserPasswd {
                    username: name,
                    password_hash: hash(read_password(password_stdin)?)?,
                },
                UserCmd::List => Command::UserList,
                UserCmd::Disable { name } => Command::UserSetDisabled {
                    username: name,
                    disabled: true,
                },
                UserCmd::Enable { name } => Command::UserSetDisabled {
                    username: name,
                    disabled: false,
                },
                UserCmd::Delete { name } => Command::UserDelete { username: name },
                UserCmd::Show { name } => Command::UserShow { username: name },
                UserCmd::Reset2fa { name } => Command::UserReset2fa { username: name },
            };
            println!("{}", admin(&config, command).await?);
            Ok(())
        }
        Top::BenchSeed {
            users,
            sessions,
            out,
        } => crate::bench_seed::run(config::load(path)?, users, sessions, &out).await,
        Top::Storage {
            command: StorageCmd::Copy { from, to },
        } => {
            let from = open_endpoint("--from", &from).await?;
            let to = open_endpoint("--to", &to).await?;
            let copied = crate::store::copy(from.as_ref(), to.as_ref()).await?;
            println!("{copied}");
            Ok(())
        }
        Top::Keys {
            command: KeysCmd::Accept,
        } => {
            let config = config::load(path)?;
            let store = crate::state::open_store(&config, false).await?;
            let secret = crate::auth::session::load_or_create_secret(
                config.session.secret.as_ref().map(|s| s.expose()),
                &config.data_dir,
            )?;
            let key = crate::crypto::load_or_create_key(
                config.encryption_key.as_ref().map(|s| s.expose()),
                &config.data_dir,
            )?;
            crate::crypto::check_key_fingerprints(
                store.as_ref(),
                &[
                    ("session.secret", &secret),
                    ("storage.encryption_key", &key),
                ],
                true,
            )
            .await?;
            crate::audit!("keys_accepted", by = "cli");
            println!("the configured keys are now the store's own");
            Ok(())
        }
        Top::Sessions { command } => {
            let config = config::load(path)?;
            let command = match command {
                SessionsCmd::List { user } => Command::SessionsList { username: user },
                SessionsCmd::Revoke { id, user } => Command::SessionsRevoke { id, username: user },
            };
            println!("{}", admin(&config, command).await?);
            Ok(())
        }
    }
}

/// The program: parse, run, print errors; returns the exit code.
pub fn main() -> i32 {
    match run(Cli::parse()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            1
        }
    }
}
