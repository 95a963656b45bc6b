#!/usr/bin/env node
/**
 * The official Phoenix client (the npm package `phoenix`, unchanged) driven
 * against a channels_core server, one scenario per run.
 *
 *     node tests/js/scenario.js <scenario> <websocket|longpoll> <ws://host:port/socket> [options-json]
 *
 * Every observation is printed as one JSON line, `{"event": ..., ...}`, in the
 * order phoenix.js made it; the last line is `{"done": true}`. ArrayBuffer
 * payloads are printed as `{"binary": [bytes]}`. tests/test_phoenix_js.py runs
 * the scenarios and asserts on the lines.
 *
 * Node 20 has no global WebSocket, and phoenix.js would then silently fall back
 * to LongPoll. So the transport is always passed explicitly: the `ws`
 * package's WebSocket or phoenix.js's own LongPoll (which uses Node's global
 * fetch), and every run reports which class the connection really is.
 */
"use strict"

const {Socket, LongPoll} = require("phoenix")
const WebSocket = require("ws")

const [scenarioName, transportName, endPoint, optionsJson] = process.argv.slice(2)
const options = optionsJson ? JSON.parse(optionsJson) : {}
const TRANSPORTS = {websocket: WebSocket, longpoll: LongPoll}

// Failing here is better than waiting for pytest's timeout: the last lines say what was pending.
const WATCHDOG_MS = options.watchdog_ms || 8000

// Observations

let finished = false

function jsonValue(_key, value){
  if(value instanceof ArrayBuffer){ return {binary: Array.from(new Uint8Array(value))} }
  return value
}

const observations = []
const waiters = []

/** Print one observation, and wake whoever waits for it. */
function observe(event, fields = {}){
  if(finished){ return }
  const observation = {event, ...fields}
  observations.push(observation)
  process.stdout.write(JSON.stringify(observation, jsonValue) + "\n")
  for(const waiter of [...waiters]){ waiter.check() }
}

/**
 * Resolve once `count` observations match `predicate`, counting those made already:
 * so a reply that arrives before anyone waits for it is not missed.
 */
function waitFor(label, predicate, count = 1){
  return new Promise(resolve => {
    const waiter = {
      label,
      check(){
        if(observations.filter(predicate).length >= count){
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

// Sockets and channels

const sockets = []

/** The transport class of the socket's current connection, by identity, not by name. */
function connectionClass(socket){
  const conn = socket.conn
  if(conn instanceof LongPoll){ return "LongPoll" }
  if(conn instanceof WebSocket){ return "WebSocket" }
  return conn ? `unexpected ${conn.constructor.name}` : null
}

/**
 * A phoenix.js Socket on the given transport, with short timers, its state changes
 * observed. `client` tags the observations of one socket when a scenario has two.
 */
function makeSocket(transport, {client, params, authToken, heartbeatIntervalMs} = {}){
  const socketOptions = {
    transport: TRANSPORTS[transport],
    params: params || {},
    // A push that gets no reply reports "timeout" well before the watchdog fires.
    timeout: 5000,
    // Rejoin and reconnect at once rather than after phoenix.js's 1 s and 10 ms steps.
    rejoinAfterMs: () => 20,
    reconnectAfterMs: () => 20,
    heartbeatIntervalMs: heartbeatIntervalMs || 30000,
    // Longer than the server's 10 s poll window, as phoenix.js's default (20 s) is.
    longpollerTimeout: 20000,
  }
  if(authToken !== undefined){ socketOptions.authToken = authToken }
  if(!socketOptions.transport){ throw new Error(`unknown transport ${transport}`) }
  const socket = new Socket(endPoint, socketOptions)
  const tag = client ? {client} : {}
  socket.onOpen(() => observe("socket_open", {...tag, connection: connectionClass(socket)}))
  socket.onError(error => observe("socket_error", {...tag, error: describeError(error), connection: connectionClass(socket)}))
  socket.onClose(event => observe("socket_close", {...tag, code: event.code, reason: event.reason, was_clean: event.wasClean}))
  sockets.push(socket)
  return socket
}

/** WebSocket errors are ErrorEvents; LongPoll's are bare statuses such as 403. */
function describeError(error){
  if(error && typeof error === "object" && "message" in error){ return error.message }
  return error
}

/** Connect and wait until open; the observation carries the connection's real class. */
async function connect(socket, client){
  socket.connect()
  await waitFor(`${client || ""} socket_open`, o => o.event === "socket_open" && o.client === client)
}

/** Join `topic` with `params`, observing the join reply and the channel's pushes. */
function join(socket, topic, params, {client, events = ["user_entered", "joined"]} = {}){
  const channel = socket.channel(topic, params)
  const tag = client ? {client} : {}
  for(const event of events){
    channel.on(event, payload => observe(event, {...tag, payload}))
  }
  // The hooks stay on the join push, so a rejoin is observed as a second join reply.
  channel.join()
    .receive("ok", response => observe("join", {...tag, status: "ok", response, join_ref: channel.joinRef()}))
    .receive("error", response => observe("join", {...tag, status: "error", response, join_ref: channel.joinRef()}))
    .receive("timeout", () => observe("join", {...tag, status: "timeout"}))
  return channel
}

/** Push and observe the reply, whatever its status. */
function push(channel, event, payload, {client, label = event} = {}){
  const tag = client ? {client} : {}
  const record = status => response => observe("reply", {...tag, push: label, status, response})
  return channel.push(event, payload)
    .receive("ok", record("ok"))
    .receive("error", record("error"))
    .receive("timeout", record("timeout"))
}

/** Every frame the socket decoded, as phoenix.js's onMessage sees it. */
function observeWire(socket, {client, topic} = {}){
  const tag = client ? {client} : {}
  socket.onMessage(({topic: t, event, payload, ref, join_ref}) => {
    if(topic === undefined || t === topic){
      observe("wire", {...tag, topic: t, wire_event: event, payload, ref, join_ref})
    }
  })
}

/** Record every HTTP exchange LongPoll makes: fetch is Node's, only watched. */
function observeHttp(){
  const realFetch = globalThis.fetch
  globalThis.fetch = async (url, init = {}) => {
    const response = await realFetch(url, init)
    const text = await response.clone().text()
    let body = null
    try { body = text ? JSON.parse(text) : null } catch { body = {text} }
    const {pathname, searchParams} = new URL(url)
    const headers = init.headers || {}
    observe("http", {
      method: init.method,
      auth_token_header: headers["X-Phoenix-AuthToken"] === undefined ? null : headers["X-Phoenix-AuthToken"],
      path: pathname,
      vsn: searchParams.get("vsn"),
      has_token: searchParams.has("token"),
      status: response.status,
      body,
    })
    return response
  }
}

// Scenarios

const scenarios = {
  /** Join room:lobby: the reply, then user_entered and the joined push with the connect params' user_id. */
  async join(){
    if(options.record_http){ observeHttp() }
    const socket = makeSocket(transportName, {params: options.params, authToken: options.auth_token})
    await connect(socket)
    const channel = join(socket, "room:lobby", {user: "alice"})
    await waitFor("joined", is("joined"))
    observe("state", {channel: channel.state})
  },

  /** room:private refuses; phoenix.js retries the join by itself after rejoinAfterMs. */
  async join_error(){
    const socket = makeSocket(transportName, {params: {user_id: "u1"}})
    await connect(socket)
    const channel = join(socket, "room:private", {})
    await waitFor("two refused joins", is("join", {status: "error"}), 2)
    observe("state", {channel: channel.state})
  },

  /** connect refuses: no open, an error, a close, and no reconnect once disconnected. */
  async refused(){
    if(options.record_http){ observeHttp() }
    const socket = makeSocket(transportName, {params: options.params, authToken: options.auth_token})
    socket.connect()
    await waitFor("socket_close", is("socket_close"))
    socket.disconnect()
    observe("state", {connected: socket.isConnected()})
  },

  /** ping echoes, new_msg replies ok and comes back through handle_out with this transport's name. */
  async push_reply(){
    const socket = makeSocket(transportName, {params: {user_id: "u1"}})
    await connect(socket)
    const channel = join(socket, "room:lobby", {user: "alice"}, {events: ["joined", "new_msg"]})
    await waitFor("joined", is("joined"))
    push(channel, "ping", options.ping_payload)
    await waitFor("ping reply", is("reply", {push: "ping"}))
    push(channel, "new_msg", {body: "hello"})
    await waitFor("new_msg echo", is("new_msg"))
    await waitFor("new_msg reply", is("reply", {push: "new_msg"}))
  },

  /**
   * Two sockets in one room, each on its own transport (`options.peer`): each sees the
   * other's new_msg, tagged by handle_out with its own transport.
   */
  async broadcast(){
    const a = makeSocket(transportName, {client: "a", params: {user_id: "ua"}})
    const b = makeSocket(options.peer || transportName, {client: "b", params: {user_id: "ub"}})
    const events = ["user_entered", "joined", "new_msg"]
    await connect(a, "a")
    const channelA = join(a, "room:lobby", {user: "alice"}, {client: "a", events})
    await waitFor("a joined", is("joined", {client: "a"}))
    await connect(b, "b")
    const channelB = join(b, "room:lobby", {user: "bob"}, {client: "b", events})
    await waitFor("b joined", is("joined", {client: "b"}))
    await waitFor("a saw bob enter", o => o.event === "user_entered" && o.client === "a" && o.payload.user === "bob")

    push(channelA, "new_msg", {body: "from a"}, {client: "a"})
    await waitFor("a's reply", is("reply", {client: "a"}))
    await waitFor("a's echo and b's copy", is("new_msg"), 2)

    push(channelB, "new_msg", {body: "from b"}, {client: "b"})
    await waitFor("b's reply", is("reply", {client: "b"}))
    await waitFor("b's echo and a's copy", is("new_msg"), 4)
  },

  /** boom crashes the channel: you_left, phx_error, then phoenix.js rejoins on its own. */
  async crash(){
    const socket = makeSocket(transportName, {params: {user_id: "u1"}})
    await connect(socket)
    const connection = socket.conn
    const channel = join(socket, "room:lobby", {user: "alice"}, {events: ["joined", "you_left"]})
    channel.onError(reason => observe("channel_error", {payload: reason}))
    await waitFor("joined", is("joined"))
    push(channel, "boom", {})
    await waitFor("rejoined", is("joined"), 2)
    observe("state", {
      channel: channel.state,
      connected: socket.isConnected(),
      same_connection: socket.conn === connection,
    })
  },

  /** leave: the leave push's reply, the channel's close, and what reached the socket afterwards. */
  async leave(){
    const socket = makeSocket(transportName, {params: {user_id: "u1"}})
    await connect(socket)
    const channel = join(socket, "room:lobby", {user: "alice"}, {events: ["joined", "you_left"]})
    await waitFor("joined", is("joined"))
    observeWire(socket, {topic: "room:lobby"})
    channel.onClose(payload => observe("channel_close", {payload}))
    // Observed around the call, to show what phoenix.js does before the server answers.
    observe("leave_called", {join_ref: channel.joinRef()})
    const leavePush = channel.leave()
      .receive("ok", response => observe("reply", {push: "leave", status: "ok", response}))
    observe("leave_returned", {ref: leavePush.ref, channel: channel.state, channels: socket.channels.length})
    await waitFor("you_left on the wire", o => o.event === "wire" && o.wire_event === "you_left")
    observe("state", {channel: channel.state, channels: socket.channels.length, connected: socket.isConnected()})
  },

  /** Heartbeats on phoenix.js's own timer (WebSocket); LongPoll skips them, so ping explicitly. */
  async heartbeat(){
    const socket = makeSocket(transportName, {
      params: {user_id: "u1"},
      heartbeatIntervalMs: options.heartbeat_interval_ms,
    })
    observeWire(socket, {topic: "phoenix"})
    await connect(socket)
    const connection = socket.conn
    observe("skip_heartbeat", {value: !!connection.skipHeartbeat})
    const count = options.count || 3
    if(connection.skipHeartbeat){
      for(let i = 1; i <= count; i++){
        await new Promise(resolve => socket.ping(rtt => resolve(rtt)))
        observe("pong", {count: i})
      }
    } else {
      await waitFor("heartbeat replies", is("wire", {wire_event: "phx_reply"}), count)
    }
    observe("state", {connected: socket.isConnected(), same_connection: socket.conn === connection})
  },

  /** ArrayBuffer payloads both ways (V2 binary frames; WebSocket only). */
  async binary(){
    const socket = makeSocket(transportName, {params: {user_id: "u1"}})
    await connect(socket)
    const channel = join(socket, "room:lobby", {user: "alice"}, {events: ["joined", "binary_event"]})
    await waitFor("joined", is("joined"))
    push(channel, "binary_event", new Uint8Array([1, 2]).buffer)
    await waitFor("binary_event reply", is("reply", {push: "binary_event"}))
    push(channel, "ping", new Uint8Array([9, 8, 7]).buffer)
    await waitFor("ping reply", is("reply", {push: "ping"}))
  },

  /** bench_broadcast n: n bench_msg broadcasts in order, then the reply. */
  async bench(){
    const socket = makeSocket(transportName, {params: {user_id: "u1"}})
    await connect(socket)
    const channel = join(socket, "room:lobby", {user: "alice"}, {events: ["joined", "bench_msg"]})
    await waitFor("joined", is("joined"))
    push(channel, "bench_broadcast", {n: options.n})
    await waitFor("bench_broadcast reply", is("reply", {push: "bench_broadcast"}))
  },
}

// Running

async function finish(code){
  if(finished){ return }
  finished = true
  // A WebSocket closes with a handshake, which we let complete so that the server sees a
  // clean close (1000), as it would from a browser; LongPoll stops its requests at once.
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
