//! One shutdown signal that reaches every long-lived loop.

use tokio::sync::watch;

/// Sends the shutdown signal; cheap to share behind the gateway.
#[derive(Debug)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

/// Waits for the shutdown signal.
#[derive(Debug, Clone)]
pub struct ShutdownWait {
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { sender: watch::channel(false).0 }
    }
}

impl Shutdown {
    /// Signals every waiter.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether shutdown has been signalled.
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// A handle to wait on.
    pub fn subscribe(&self) -> ShutdownWait {
        ShutdownWait { receiver: self.sender.subscribe() }
    }
}

impl ShutdownWait {
    /// Resolves once shutdown is signalled (at once if it already was).
    pub async fn wait(&mut self) {
        let _ = self.receiver.wait_for(|down| *down).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_even_when_subscribed_late() {
        let shutdown = Shutdown::default();
        let mut early = shutdown.subscribe();
        let task = tokio::spawn(async move { early.wait().await });
        shutdown.trigger();
        task.await.unwrap();
        shutdown.subscribe().wait().await;
        assert!(shutdown.is_triggered());
    }
}
