#!/usr/bin/env node
/**
 * phoenix.js's Presence (the npm package `phoenix`, unchanged) against channels_core.
 *
 *     node tests/js/presence.js <scenario> '{"a": "ws://host:port/socket", "b": ...}'
 *
 * Each client is a phoenix.js Socket (on the `ws` package's WebSocket: Node 20 has
 * no global one) with a channel on room:lobby, joined with {presence: true}, and a
 * `new Presence(channel)`. A scenario makes one change at a time (a join, a leave,
 * a crash) and waits until every client's Presence shows it. Then it prints a
 * checkpoint and waits for a line on stdin before going on, so that the test can
 * compare what each client lists with what the server lists at that moment:
 *
 *     {"checkpoint": "bob joined",
 *      "lists": {"alice": <presence.state>, ...},
 *      "syncs": {"alice": [{"alice": ["r1"], "bob": ["r2"]}, ...], ...}}
 *
 * `lists` is each client's whole Presence state; `syncs` is what each client's
 * onSync saw since the previous checkpoint, as {key: [phx_ref, ...]}, which
 * shows the steps in between (a crashed client gone, then back). The last line is
 * {"done": true}; a step that does not happen in time prints {"watchdog": ...}
 * and exits 1.
 */
"use strict"

const readline = require("readline")
const {Socket, Presence} = require("phoenix")
const WebSocket = require("ws")

const [scenarioName, endpointsJson] = process.argv.slice(2)
const endpoints = JSON.parse(endpointsJson || "{}")
const TOPIC = "room:lobby"
const WATCHDOG_MS = 8000

// Waiting on the clients' presence, and on the test

const waiters = []

function wake(){
  for(const waiter of [...waiters]){
    if(waiter.check()){
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve()
    }
  }
}

/** Resolve once `check()` is true: checked now and after every onSync of any client. */
function until(label, check){
  return new Promise(resolve => {
    const waiter = {label, check, resolve}
    waiters.push(waiter)
    wake()
  })
}

const input = readline.createInterface({input: process.stdin})
const lines = []
let lineArrived = null
input.on("line", line => {
  lines.push(line)
  if(lineArrived){ lineArrived() }
})

function nextLine(){
  if(lines.length){ return Promise.resolve(lines.shift()) }
  return new Promise(resolve => { lineArrived = () => { lineArrived = null; resolve(lines.shift()) } })
}

function print(object){ process.stdout.write(JSON.stringify(object) + "\n") }

// Clients

const clients = {}

/** {key: [phx_ref, ...]}: a Presence state with only what identifies each meta. */
function refs(state){
  const out = {}
  for(const key of Object.keys(state)){ out[key] = state[key].metas.map(meta => meta.phx_ref) }
  return out
}

/** A client named `name` on node `node`, as `userId` (none: anonymous), joined with presence. */
function open(name, node, userId, {reconnect = true} = {}){
  const socket = new Socket(endpoints[node], {
    transport: WebSocket,
    params: userId ? {user_id: userId} : {},
    timeout: 5000,
    heartbeatIntervalMs: 30000,
    rejoinAfterMs: () => 20,
    // A client whose connection is cut on purpose must stay away for the rest of the run.
    reconnectAfterMs: () => (reconnect ? 20 : 600000),
  })
  const channel = socket.channel(TOPIC, {user: userId || null, presence: true})
  const presence = new Presence(channel)
  const client = {name, socket, channel, presence, syncs: []}
  presence.onSync(() => {
    client.syncs.push(refs(presence.state))
    wake()
  })
  socket.connect()
  channel.join().receive("error", reply => { throw new Error(`${name}'s join was refused: ${JSON.stringify(reply)}`) })
  clients[name] = client
  return client
}

/** True when each named client lists exactly `counts` ({key: number of metas}). */
function lists(names, counts){
  return () => names.every(name => {
    const shown = refs(clients[name].presence.state)
    const keys = Object.keys(shown).sort()
    return JSON.stringify(keys) === JSON.stringify(Object.keys(counts).sort())
      && keys.every(key => shown[key].length === counts[key])
  })
}

/** Print what every live client lists, and wait for the test to say go on. */
async function checkpoint(name, names){
  const out = {checkpoint: name, lists: {}, syncs: {}}
  for(const client of names.map(n => clients[n])){
    out.lists[client.name] = client.presence.state
    out.syncs[client.name] = client.syncs
  }
  for(const client of Object.values(clients)){ client.syncs = [] }
  clearTimeout(watchdog)  // the watchdog times each step, not the test's turn at a checkpoint
  print(out)
  await nextLine()
  armWatchdog()
}

// Scenarios

const scenarios = {
  /** One node: join, a second client, a second tab, the tab closed, a channel crash, a lost connection. */
  async lifecycle(){
    open("alice", "a", "alice")
    await until("alice lists herself", lists(["alice"], {alice: 1}))
    await checkpoint("alice joined", ["alice"])

    open("bob", "a", "bob", {reconnect: false})
    await until("both list both", lists(["alice", "bob"], {alice: 1, bob: 1}))
    await checkpoint("bob joined", ["alice", "bob"])

    const tab = open("alice2", "a", "alice")
    await until("a second meta for alice", lists(["alice", "bob", "alice2"], {alice: 2, bob: 1}))
    await checkpoint("alice opened a second tab", ["alice", "bob", "alice2"])

    tab.channel.leave()
    await until("alice back to one meta", lists(["alice", "bob"], {alice: 1, bob: 1}))
    await checkpoint("alice closed the second tab", ["alice", "bob"])

    const before = refs(clients.bob.presence.state).bob[0]
    clients.bob.channel.push("boom", {})
    const rejoined = name => () => {
      const shown = refs(clients[name].presence.state).bob
      return shown !== undefined && shown.length === 1 && shown[0] !== before
    }
    await until("bob tracked again after his rejoin", () => rejoined("alice")() && rejoined("bob")())
    await checkpoint("bob's channel crashed and phoenix.js rejoined", ["alice", "bob"])

    // No close frame: the server only sees the TCP connection end, as when a laptop dies.
    clients.bob.socket.conn.terminate()
    await until("bob gone", lists(["alice"], {alice: 1}))
    await checkpoint("bob's connection died", ["alice"])
  },

  /** Two nodes: clients on each, a tab of the same user on the other node, a client leaving. */
  async two_nodes(){
    open("alice", "a", "alice")
    await until("alice lists herself", lists(["alice"], {alice: 1}))
    open("bob", "b", "bob")
    await until("both list both", lists(["alice", "bob"], {alice: 1, bob: 1}))
    await checkpoint("alice on a, bob on b", ["alice", "bob"])

    open("alice2", "b", "alice")
    await until("alice on both nodes", lists(["alice", "bob", "alice2"], {alice: 2, bob: 1}))
    await checkpoint("alice opened a tab on b", ["alice", "bob", "alice2"])

    clients.bob.socket.disconnect()
    await until("bob gone", lists(["alice", "alice2"], {alice: 2}))
    await checkpoint("bob left", ["alice", "alice2"])
  },
}

// Running

let watchdog = null

function armWatchdog(){
  clearTimeout(watchdog)
  watchdog = setTimeout(() => {
    const seen = {}
    for(const client of Object.values(clients)){ seen[client.name] = refs(client.presence.state) }
    print({watchdog: waiters.map(w => w.label), seen})
    process.exit(1)
  }, WATCHDOG_MS)
}

async function main(){
  const scenario = scenarios[scenarioName]
  if(!scenario){ throw new Error(`unknown scenario ${scenarioName}; known: ${Object.keys(scenarios).join(", ")}`) }
  armWatchdog()
  await scenario()
  clearTimeout(watchdog)
  // Let each WebSocket's close handshake complete, so that the server sees clean closes.
  const open = Object.values(clients).map(c => c.socket.conn).filter(ws => ws && ws.readyState !== WebSocket.CLOSED)
  for(const client of Object.values(clients)){ client.socket.disconnect() }
  await Promise.race([
    Promise.all(open.map(ws => new Promise(resolve => ws.once("close", resolve)))),
    new Promise(resolve => setTimeout(resolve, 1000)),
  ])
  print({done: true})
  process.exit(0)
}

main().catch(error => {
  process.stderr.write(`${error.stack || error}\n`)
  process.exit(2)
})
