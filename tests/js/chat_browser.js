#!/usr/bin/env node
/**
 * The demo's chat page in a real browser: two tabs, one room, one message.
 *
 *     node tests/js/chat_browser.js <http://host:port> <screenshot.png> [message]
 *
 * Drives Debian's chromium (never a downloaded browser) through playwright-core.
 * Each tab is its own browser context, so the two share nothing but the server.
 * Both join room:lobby through the page's form, and wait until each tab's online
 * list (phoenix.js's Presence) shows both; tab 1 ("alice") sends `message`;
 * the script waits until it shows in both tabs, saves a screenshot of tab 2, and
 * prints one JSON object with what each tab shows. tests/test_browser.py starts
 * the server and asserts on that object.
 */
"use strict"

const fs = require("fs")
const path = require("path")
const {chromium} = require("playwright-core")

const [baseUrl, screenshotPath, message = "hello from tab 1"] = process.argv.slice(2)
const ROOM = "room:lobby"
const WAIT_MS = Number(process.env.CHAT_BROWSER_WAIT_MS || 10000)

const LAUNCH = {
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
}

/** Open the page in a fresh context, and join ROOM as `name` through the form. */
async function openTab(browser, name){
  const context = await browser.newContext({viewport: {width: 760, height: 560}})
  const page = await context.newPage()
  page.setDefaultTimeout(WAIT_MS)
  const errors = []
  page.on("console", entry => { if(entry.type() === "error"){ errors.push(entry.text()) } })
  page.on("pageerror", error => errors.push(String(error)))
  // Console errors for failed loads do not say which URL failed; this does.
  page.on("response", response => {
    if(response.status() >= 400){ errors.push(`HTTP ${response.status()} ${new URL(response.url()).pathname}`) }
  })
  await page.goto(baseUrl + "/")
  await page.fill("#name", name)
  await page.click("#join")
  await page.waitForFunction(room => document.body.dataset.joined === room, ROOM)
  return {context, page, errors}
}

/** Wait until `text` is one of the lines in the page's #messages. */
function waitForLine(page, text){
  return page.waitForFunction(
    line => Array.from(document.querySelectorAll("#messages li")).some(li => li.textContent === line),
    text,
  )
}

/** Wait until the tab's online list is exactly `names`, in order. */
function waitForOnline(page, names){
  return page.waitForFunction(
    expected => JSON.stringify(Array.from(document.querySelectorAll("#online li")).map(li => li.textContent))
      === JSON.stringify(expected),
    names,
  )
}

/** What a tab shows: status line, message lines, online list, and the message form's state. */
function snapshot(tab){
  return tab.page.evaluate(() => ({
    status: document.getElementById("status").textContent,
    joined: document.body.dataset.joined || null,
    messages: Array.from(document.querySelectorAll("#messages li"))
      .map(li => ({text: li.textContent, system: li.classList.contains("system")})),
    online: Array.from(document.querySelectorAll("#online li")).map(li => li.textContent),
    input: document.getElementById("message").value,
    inputDisabled: document.getElementById("message").disabled,
  })).then(state => ({...state, errors: tab.errors}))
}

async function main(){
  if(!baseUrl || !screenshotPath){
    throw new Error("usage: chat_browser.js <http://host:port> <screenshot.png> [message]")
  }
  const browser = await chromium.launch(LAUNCH)
  try {
    const alice = await openTab(browser, "alice")
    const bob = await openTab(browser, "bob")
    await waitForOnline(alice.page, ["alice", "bob"])
    await waitForOnline(bob.page, ["alice", "bob"])

    await alice.page.fill("#message", message)
    await alice.page.click("#send")
    const line = "alice: " + message
    await waitForLine(bob.page, line)
    // Tab 1 never shows what it sent locally: its line comes back through the broadcast.
    await waitForLine(alice.page, line)

    fs.mkdirSync(path.dirname(screenshotPath), {recursive: true})
    await bob.page.screenshot({path: screenshotPath, fullPage: true})
    const result = {tab1: await snapshot(alice), tab2: await snapshot(bob), screenshot: screenshotPath}
    process.stdout.write(JSON.stringify(result) + "\n")
  } finally {
    await browser.close()
  }
}

main().catch(error => {
  process.stderr.write((error && error.stack) || String(error))
  process.stderr.write("\n")
  process.exit(1)
})
