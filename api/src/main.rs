//! `api`: the HTTP facade.

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    jobs::telemetry::init("api");
    let config = match api::ApiConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            // Also on stderr: the reason must show even with logging filtered or shipped away.
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("api: invalid configuration: {e}");
            std::process::exit(2);
        }
    };
    let state = api::AppState::connect(config).await?;
    api::serve(state, shutdown_signal()).await
}
