//! A minimal `join_all` for borrowed futures, so parts of one large value can be written and
//! read concurrently without copying the value into `'static` tasks.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Polls every future until all are done; outputs come back in input order.
pub(crate) async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn joins_in_order() {
        let data = [1u32, 2, 3];
        let out = join_all(data.iter().map(|x| async move {
            tokio::task::yield_now().await;
            x * 10
        }))
        .await;
        assert_eq!(out, vec![10, 20, 30]);
        let empty: Vec<u32> = join_all(Vec::<std::future::Ready<u32>>::new()).await;
        assert!(empty.is_empty());
    }
}
