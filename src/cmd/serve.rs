//! `faceprobe serve`: runs the edge until SIGTERM or SIGINT, then shuts down gracefully.

use anyhow::Context;
use faceprobe::config::{Config, Mode, UpstreamUrl};
use faceprobe::record::checkpoint::Checkpointer;
use faceprobe::store::signing::SigningKey;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Upstream site to proxy (proxy mode), e.g. http://127.0.0.1:8000.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    if let Some(u) = args.upstream {
        let upstream = UpstreamUrl::parse(&u)
            .map_err(|e| anyhow::anyhow!("--upstream {u}: {e}; give http://host:port"))?;
        config.serve.upstream = Some(upstream);
        if config.serve.mode == Mode::Demo {
            config.serve.mode = Mode::Proxy;
        }
    }
    if let Some(l) = args.listen {
        config.serve.listen = l.parse().map_err(|_| {
            anyhow::anyhow!("--listen {l}: not an address; give host:port such as 127.0.0.1:8080")
        })?;
    }
    if config.effective_mode() == Mode::Proxy && config.serve.upstream.is_none() {
        anyhow::bail!("proxy mode needs an upstream: pass --upstream URL or set serve.upstream");
    }
    // Before any thread starts: the threads started from here on inherit the policy.
    if let Err(e) = faceprobe::edge::sched::apply(config.serve.scheduling) {
        tracing::warn!(
            "could not set serve.scheduling = {:?}: {e}; threads keep the default policy",
            config.serve.scheduling
        );
    }
    // This runtime accepts connections, serves the admin listener and handles signals; the
    // connections themselves are served by the edge's worker threads (serve.workers).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("faceprobe-main")
        .build()
        .context("starting the async runtime")?;
    let data_dir = config.store.data_dir.clone();
    // Before anything is made or bound: a public admin listener without a token is refused.
    let (access, made) = faceprobe::review::Access::new(&config)?;
    drop(faceprobe::store::Store::open(&data_dir)?);
    if let Some(token) = made {
        // Shown once, on the terminal only (never through the log, which may be shipped).
        eprintln!(
            "faceprobe: dashboard admin token (shown once; only its SHA-256 is kept, in {}):\n\n    {token}\n\nSign in at http://{}/ with it. To replace it, set {} or delete that file and restart.\n",
            data_dir.join(faceprobe::review::access::TOKEN_HASH_FILE).display(),
            config.serve.admin_listen,
            faceprobe::review::access::TOKEN_ENV,
        );
    }
    let dashboard_config = config.clone();
    let dashboard: faceprobe::edge::AdminService = Box::new(move |listener, metrics| {
        Box::pin(faceprobe::review::serve(
            dashboard_config,
            access,
            listener,
            metrics,
        ))
    });
    let key = SigningKey::load_or_create(&data_dir, config.evidence.signing_key.as_deref())?;
    let key_line = key.public_line();
    let checkpoints = Checkpointer::start(
        &data_dir,
        Arc::new(key),
        &config.evidence.site,
        Duration::from_secs(config.evidence.checkpoint_minutes * 60),
    )?;
    let metrics = Arc::new(faceprobe::metrics::Metrics::default());
    let (shipper, fleet_alerts) = start_shipper(&config, &key_line, &metrics)?;
    runtime.block_on(async {
        // Registered before anything is served: a SIGTERM that comes early must still be a
        // graceful shutdown, not the default action (kill).
        let shutdown = shutdown_signal().context("installing the SIGTERM/SIGINT handlers")?;
        faceprobe::edge::serve(config, shutdown, Some(dashboard), metrics).await?;
        anyhow::Ok(())
    })?;
    // The recorder has flushed: the last events are in the chain this checkpoint signs.
    match checkpoints.finish() {
        Ok(Some(c)) => tracing::info!(event = c.event_id, seq = c.seq, "chain head signed"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "could not sign the chain head at shutdown"),
    }
    // What the recorder committed last, and that checkpoint, are shipped before the process
    // ends: a fleet bundle can then disclose the instance's last events.
    if let Some(shipper) = shipper {
        shipper.finish(Duration::from_secs(5));
    }
    if let Some(alerts) = fleet_alerts.and_then(|a| Arc::try_unwrap(a).ok()) {
        let alerts = alerts.into_inner().unwrap_or_else(|e| e.into_inner());
        alerts.shutdown(Duration::from_secs(5));
    }
    // The database file alone then holds everything: a copy of it after a stop is whole.
    if let Err(e) = faceprobe::store::Store::open(&data_dir).and_then(|s| s.checkpoint()) {
        tracing::warn!(error = %e, "could not fold the write-ahead log into the database at shutdown");
    }
    Ok(ExitCode::SUCCESS)
}

/// The shipper, and the alert webhooks its fleet detector's flags go to.
type Fleet = (
    Option<faceprobe::fleet::ship::Shipper>,
    Option<Arc<std::sync::Mutex<faceprobe::detect::alert::Alerts>>>,
);

/// Ships the local record to the fleet store when one is configured (`[fleet]`); the
/// shipper has a thread of its own and never holds up serving. The fleet detector's flags
/// go to the alert webhooks (`[alert]`), as the instance's own do.
fn start_shipper(
    config: &Config,
    public_key: &str,
    metrics: &Arc<faceprobe::metrics::Metrics>,
) -> anyhow::Result<Fleet> {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(url) = faceprobe::fleet::url(config) else {
        metrics.fleet_up.store(-1, Relaxed);
        return Ok((None, None));
    };
    let alerts = match config.alert.webhooks.is_empty() {
        true => None,
        false => Some(Arc::new(std::sync::Mutex::new(
            faceprobe::detect::alert::Alerts::start(&config.alert)?,
        ))),
    };
    let alerting = alerts.clone().map(|a| faceprobe::fleet::detect::Alerting {
        level: config.alert.level,
        notify: Box::new(move |summary| {
            a.lock().unwrap_or_else(|e| e.into_inner()).notify(summary)
        }),
    });
    let mut instance = faceprobe::fleet::ship::Instance::of(config);
    instance.public_key = Some(public_key.to_string());
    tracing::info!(
        instance = %instance.name,
        site = %instance.site,
        postgres = %faceprobe::config::fleet::mask_password(&url),
        "shipping the record to the fleet store"
    );
    let shipper =
        faceprobe::fleet::ship::Shipper::start(config, url, instance, metrics.clone(), alerting)
            .context("starting the fleet shipper thread")?;
    Ok((Some(shipper), alerts))
}

/// Installs the handlers now; the future completes on the first SIGTERM or SIGINT.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("signal received");
    })
}
