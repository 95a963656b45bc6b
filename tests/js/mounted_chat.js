#!/usr/bin/env node
/**
 * phoenix.js (the npm package `phoenix`, unchanged) against the Starlette example
 * app, examples/starlette_chat, where the endpoint is mounted at /socket.
 *
 *     node tests/js/mounted_chat.js <scenario> <websocket|longpoll> <http://host:port> [options-json]
 *
 * One JSON line per observation, in the order phoenix.js made it; the last line
 * is `{"done": true}`. tests/test_asgi_mount.py runs the scenarios under uvicorn
 * and hypercorn.
 *
 * Node 20 has no global WebSocket, so the transport is always passed explicitly
 * (the `ws` package, or phoenix.js's LongPoll on Node's fetch), and each run
 * reports which class the connection really is.
 */
"use strict"

const {Socket, LongPoll} = require("phoenix")
const WebSocket = require("ws")

const [scenarioName, transportName, baseUrl, optionsJson] = process.argv.slice(2)
const options = optionsJson ? JSON.parse(optionsJson) : {}
const TRANSPORTS = {websocket: WebSocket, longpoll: LongPoll}
const WATCHDOG_MS = options.watchdog_ms || 8000

let finished = false
const observations = []
const waiters = []

function observe(event, fields = {}){
  if(finished){ return }
  const observation = {event, ...fields}
  observations.push(observation)
  process.stdout.write(JSON.stringify(observation) + "\n")
  for(const waiter of [...waiters]){ waiter.check() }
}

/** Resolve once an observation matches `predicate`, counting those made already. */
function waitFor(label, predicate){
  return new Promise(resolve => {
    const waiter = {
      label,
      check(){
        if(observations.some(predicate)){
          waiters.splice(waiters.indexOf(waiter), 1)
          resolve()
        }
      }
    }
    waiters.push(waiter)
    waiter.check()
  })
}

const is = (event, fields = {}) => o => o.event === event && Object.entries(fields).every(([k, v]) => o[k] === v)

function connectionClass(socket){
  if(socket.conn instanceof LongPoll){ return "LongPoll" }
  if(socket.conn instanceof WebSocket){ return "WebSocket" }
  return socket.conn ? `unexpected ${socket.conn.constructor.name}` : null
}

const sockets = []

function makeSocket(params){
  const socket = new Socket(`${baseUrl.replace(/^http/, "ws")}/socket`, {
    transport: TRANSPORTS[transportName],
    params,
    timeout: 5000,
    rejoinAfterMs: () => 20,
    reconnectAfterMs: () => 20,
    longpollerTimeout: 20000,
  })
  socket.onOpen(() => observe("socket_open", {connection: connectionClass(socket)}))
  socket.onError(error => observe("socket_error", {
    error: error && typeof error === "object" && "message" in error ? error.message : error,
    connection: connectionClass(socket),
  }))
  socket.onClose(event => observe("socket_close", {code: event.code, was_clean: event.wasClean}))
  sockets.push(socket)
  return socket
}

const scenarios = {
  /**
   * Join room:lobby through the mount, push new_msg (reply, then the broadcast back),
   * then POST to the host app's HTTP route and receive what its handler broadcast.
   */
  async chat(){
    const socket = makeSocket({user: "ada"})
    socket.connect()
    await waitFor("socket_open", is("socket_open"))
    const channel = socket.channel("room:lobby", {})
    channel.on("new_msg", payload => observe("new_msg", {payload}))
    channel.join()
      .receive("ok", response => observe("join", {status: "ok", response}))
      .receive("error", response => observe("join", {status: "error", response}))
    await waitFor("join", is("join"))
    channel.push("new_msg", {body: "from phoenix.js"})
      .receive("ok", response => observe("reply", {status: "ok", response}))
      .receive("error", response => observe("reply", {status: "error", response}))
    await waitFor("reply", is("reply"))
    await waitFor("own message back", o => o.event === "new_msg" && o.payload.user === "ada")

    const response = await fetch(`${baseUrl}/api/rooms/lobby/messages`, {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({user: "http", body: "from an HTTP handler"}),
    })
    observe("http", {status: response.status, body: await response.json()})
    await waitFor("HTTP message", o => o.event === "new_msg" && o.payload.user === "http")
  },

  /** Without a user, ChatSocket.connect refuses: an error, a close, and no reconnect once disconnected. */
  async refused(){
    const socket = makeSocket({})
    socket.connect()
    await waitFor("socket_close", is("socket_close"))
    socket.disconnect()
    observe("state", {connected: socket.isConnected()})
  },
}

async function finish(code){
  if(finished){ return }
  finished = true
  const closing = sockets.map(socket => socket.conn).filter(conn => conn instanceof WebSocket)
  for(const socket of sockets){ socket.disconnect() }
  await Promise.race([
    Promise.all(closing.map(ws => ws.readyState === WebSocket.CLOSED ? null : new Promise(resolve => ws.once("close", resolve)))),
    new Promise(resolve => setTimeout(resolve, 1000)),
  ])
  process.exit(code)
}

async function main(){
  const scenario = scenarios[scenarioName]
  if(!scenario){ throw new Error(`unknown scenario ${scenarioName}; known: ${Object.keys(scenarios).join(", ")}`) }
  if(!TRANSPORTS[transportName]){ throw new Error(`unknown transport ${transportName}`) }
  const watchdog = setTimeout(() => {
    observe("watchdog", {pending: waiters.map(w => w.label)})
    finish(1)
  }, WATCHDOG_MS)
  await scenario()
  clearTimeout(watchdog)
  process.stdout.write(JSON.stringify({done: true}) + "\n")
  finish(0)
}

main().catch(error => {
  process.stderr.write(`${error.stack || error}\n`)
  finish(2)
})
