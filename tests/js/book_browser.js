#!/usr/bin/env node
/**
 * The built book in a real browser: what a reader sees on each page.
 *
 *     node tests/js/book_browser.js <book/_build/html> <screenshot dir> <page.html>...
 *
 * Drives Debian's chromium (never a downloaded browser) through playwright-core.
 * Each page is opened from disk (file://), as a reader opening index.html would.
 * Requests that leave the disk are refused and reported: the book must work
 * offline. For every page it reports:
 *
 *   url       where the page ended up (index.html redirects to the landing page)
 *   nav       the links of the left-hand table of contents, in order
 *   diagrams  the notebook outputs' SVG images: how many, how many decoded, how
 *             many have a size on screen, and any DOT text shown instead of a diagram
 *   listings  the toolkit's show_source outputs: header, the line numbers shown,
 *             how many lines are highlighted, how many tokens are coloured, size
 *   failed    resources that did not load; external: requests refused
 *   errors    console errors and uncaught exceptions
 *
 * and saves two screenshots: the first diagram in view, and the first listing.
 * tests/test_book.py builds the book first and asserts on the printed JSON.
 */
"use strict"

const fs = require("fs")
const path = require("path")
const {pathToFileURL} = require("url")
const {chromium} = require("playwright-core")

const [htmlRoot, screenshotDir, ...pages] = process.argv.slice(2)
const WAIT_MS = Number(process.env.BOOK_BROWSER_WAIT_MS || 15000)

const LAUNCH = {
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
}

/** Everything the test asserts on, measured inside the page. */
function measure(){
  const visible = el => {
    const box = el.getBoundingClientRect()
    const style = getComputedStyle(el)
    return box.width > 0 && box.height > 0 && style.visibility !== "hidden" && style.display !== "none"
  }
  const outputs = Array.from(document.querySelectorAll(".cell_output"))
  const images = outputs.flatMap(o => Array.from(o.querySelectorAll("img")))
    .filter(img => /\.svg(\?|$)/.test(img.getAttribute("src") || ""))
  const nav = Array.from(document.querySelectorAll("nav.bd-docs-nav a.reference.internal"))
    .map(a => ({text: a.textContent.trim(), href: a.href}))
  // A diagram shown as its text/plain fallback would put DOT source on the page.
  const dotText = outputs.flatMap(o => Array.from(o.querySelectorAll("pre")))
    .filter(pre => /^\s*(di)?graph\s+\w*\s*\{/.test(pre.textContent)).length
  const listings = Array.from(document.querySelectorAll(".cell_output .anatomy-source")).map(listing => {
    const pre = listing.querySelector("pre")
    const spans = pre ? Array.from(pre.querySelectorAll("span")) : []
    // Line numbers: Pygments' inline numbers, padded spans holding only digits.
    const numbers = spans.filter(s => /^\s*\d+\s*$/.test(s.textContent) && s.style.paddingLeft)
      .map(s => Number(s.textContent.trim()))
    const base = pre ? getComputedStyle(pre).color : ""
    const coloured = spans.filter(s => !s.style.paddingLeft && s.textContent.trim() &&
      getComputedStyle(s).color !== base).length
    const highlighted = spans.filter(s => /rgb\(255, 243, 176\)/.test(getComputedStyle(s).backgroundColor)).length
    const box = listing.getBoundingClientRect()
    return {
      header: listing.firstElementChild ? listing.firstElementChild.textContent : "",
      numbers, coloured, highlighted,
      visible: visible(listing) && !!pre && visible(pre),
      width: Math.round(box.width), height: Math.round(box.height),
    }
  })
  return {
    url: location.href,
    title: document.title,
    nav,
    h1: (document.querySelector("main h1, article h1, h1") || {textContent: ""}).textContent.replace("#", "").trim(),
    diagrams: {
      images: images.length,
      decoded: images.filter(img => img.complete && img.naturalWidth > 0).length,
      visible: images.filter(visible).length,
      dotText,
    },
    listings,
  }
}

async function visit(context, page){
  const tab = await context.newPage()
  tab.setDefaultTimeout(WAIT_MS)
  const failed = [], external = [], errors = []
  await tab.route("**/*", route => {
    const url = route.request().url()
    if(url.startsWith("file:")){ return route.continue() }
    external.push(url)
    return route.abort()
  })
  tab.on("requestfailed", request => {
    if(request.url().startsWith("file:")){
      failed.push(`${path.relative(htmlRoot, new URL(request.url()).pathname)} (${request.failure().errorText})`)
    }
  })
  tab.on("console", entry => { if(entry.type() === "error"){ errors.push(entry.text()) } })
  tab.on("pageerror", error => errors.push(String(error)))

  const file = path.join(htmlRoot, page)
  const url = pathToFileURL(file).href
  // A redirecting page (index.html) moves on at once: wait for where it leads.
  const refresh = /<meta http-equiv="Refresh" content="\d+;\s*url=([^"]+)"/i.exec(fs.readFileSync(file, "utf8"))
  await tab.goto(url, {waitUntil: "load"})
  if(refresh){ await tab.waitForURL(new URL(refresh[1], url).href, {waitUntil: "load"}) }
  const result = await tab.evaluate(measure)
  const relative = href => href.startsWith("file:") ? path.relative(htmlRoot, new URL(href).pathname) : href
  result.url = relative(result.url)
  result.nav = result.nav.map(link => ({...link, href: relative(link.href)}))
  const stem = page.replace(/\.html$/, "").replace(/[\\/]/g, "__")
  const shots = []
  const diagram = tab.locator(".cell_output img[src$='.svg']").first()
  if(await diagram.count()){
    await diagram.scrollIntoViewIfNeeded()
    const shot = path.join(screenshotDir, `${stem}.png`)
    await tab.screenshot({path: shot})
    shots.push(shot)
  }
  const listing = tab.locator(".cell_output .anatomy-source").first()
  if(await listing.count()){
    const shot = path.join(screenshotDir, `${stem}-source.png`)
    await listing.screenshot({path: shot})
    shots.push(shot)
  }
  await tab.close()
  return {page, ...result, failed, external, errors, screenshots: shots}
}

async function main(){
  if(!htmlRoot || !screenshotDir || !pages.length){
    throw new Error("usage: book_browser.js <html root> <screenshot dir> <page.html>...")
  }
  fs.mkdirSync(screenshotDir, {recursive: true})
  const browser = await chromium.launch(LAUNCH)
  try {
    const context = await browser.newContext({viewport: {width: 1280, height: 900}})
    const results = []
    for(const page of pages){ results.push(await visit(context, page)) }
    process.stdout.write(JSON.stringify(results) + "\n")
  } finally {
    await browser.close()
  }
}

main().catch(error => {
  process.stderr.write((error && error.stack) || String(error))
  process.stderr.write("\n")
  process.exit(1)
})
