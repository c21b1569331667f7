//! The OneBot channel: a QQ private or group message through the shared OneBot client, paced
//! per bot account in Redis with every other process acting as it.

use super::Sent;
use crate::model::Channel;
use celeriac_onebot::{ErrorClass, Message, OneBot};
use std::time::Duration;

/// Send `text` to `target` (a user for [`Channel::OnebotUser`], a group otherwise). A
/// risk-control pause is `Err(wait)`: nothing was sent, the delivery waits — as long as the
/// open breaker says, else `pause` (`onebot.breaker_open_for`, the pause the reply just
/// started). A user or group that does not exist (or that the bot cannot reach) is
/// [`Sent::Gone`], with an error naming it.
pub async fn send(
    bot: &impl OneBot,
    channel: Channel,
    target: i64,
    text: &str,
    pause: Duration,
) -> Result<Sent, Duration> {
    let message = Message::text(text);
    let sent = match channel {
        Channel::OnebotGroup => bot.send_group_msg(target, message).await,
        _ => bot.send_private_msg(target, message).await,
    };
    match sent {
        Ok(id) => Ok(Sent::Delivered {
            status: None,
            response: Some(format!("message_id {id}")),
        }),
        Err(e) => match e.class() {
            ErrorClass::RiskControl => Err(e.retry_after().unwrap_or(pause)),
            ErrorClass::Gone => {
                let what = match channel {
                    Channel::OnebotGroup => "group",
                    _ => "user",
                };
                Ok(Sent::Gone {
                    status: None,
                    error: format!(
                        "QQ {what} {target} does not exist or the bot cannot reach it: {e}"
                    ),
                    response: None,
                })
            }
            ErrorClass::Permanent => Ok(Sent::Refused {
                error: e.to_string(),
            }),
            ErrorClass::Transient => Ok(Sent::Failed {
                status: None,
                error: e.to_string(),
                response: None,
                retry_after: None,
                throttled: false,
            }),
        },
    }
}
