//! The demo site and static files, served from the `ASSETS` binding
//! (`www/` in wrangler.toml). `/` is the demo's home page.

use worker::{Request, Response, Result, RouteContext, Url};

pub async fn demo_home(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let mut url: Url = req.url()?;
    url.set_path("/demo/");
    ctx.env.assets("ASSETS")?.fetch(url.to_string(), None).await
}
