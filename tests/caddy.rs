//! Real Caddy (Debian's package) in front, running examples/caddy/Caddyfile with the
//! hosts and ports swapped, asking gatehouse through forward_auth.

mod common;

use common::fronts::start_caddy;
use common::{
    browser_journey_through_front_proxy, forward_auth_config, free_port, start_upstream,
    two_factor_journey_through_front_proxy, Gatehouse,
};

#[tokio::test]
async fn browser_logs_in_through_caddy_forward_auth_and_reaches_the_panel_as_itself_with_one_and_two_factors(
) {
    let front = free_port();
    let (upstream_addr, upstream) = start_upstream().await;
    let gate = Gatehouse::start(&forward_auth_config(front));
    let _caddy = start_caddy(
        &gate.dir.path().join("caddy"),
        front,
        gate.portal,
        upstream_addr,
    );

    browser_journey_through_front_proxy(front, &upstream).await;
    two_factor_journey_through_front_proxy(front, &upstream).await;
}
