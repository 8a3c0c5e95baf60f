// The client's state store (signaling-gateway/web/src/store.js) in Node,
// without a browser: the state is read-only from outside, named updates
// change it and tell the subscribers what changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as S from '../../signaling-gateway/web/src/store.js';

test('store: read-only from outside, named updates notify subscribers', () => {
  const { store } = S;
  assert.throws(() => {
    store.phase = 'call';
  }, TypeError);
  assert.throws(() => {
    delete store.role;
  }, TypeError);
  assert.equal(store.phase, 'prejoin');

  const changes = [];
  const unsubscribe = S.subscribe((c) => changes.push({ what: [...c.what].sort(), id: c.id }));

  S.joined({ id: 7, role: 'moderator', locked: false, pad_token: 'p', participants: [{ id: 3, name: 'Bruno', role: 'participant' }] });
  assert.equal(store.joined, true);
  assert.equal(store.role, 'moderator');
  assert.equal(store.names.get('3'), 'Bruno');
  assert.deepEqual(changes.at(-1), { what: ['controls', 'people', 'tiles', 'waiting'], id: null });

  // Knocks: fresh once, shown to moderators.
  assert.equal(S.knocked(9, 'Gaston'), true);
  assert.equal(S.knocked(9, 'Gaston'), false);
  assert.deepEqual(changes.at(-1), { what: ['controls', 'waiting'], id: '9' });
  S.knockResolved(9);
  assert.equal(store.waiting.size, 0);

  // Losing the moderator role drops the waiting list.
  S.knocked(10, 'Hélène');
  S.roleChanged(7, 'participant');
  assert.equal(store.role, 'participant');
  assert.equal(store.waiting.size, 0);
  assert.deepEqual(changes.at(-1), { what: ['badges', 'controls', 'people', 'waiting'], id: '7' });

  // Chat: unread only while the chat panel is closed.
  S.chatReceived({ from: 3, name: 'Bruno', text: 'a', time: 0 });
  assert.equal(store.unread, 1);
  S.openPanel('chat');
  assert.equal(store.unread, 0);
  assert.equal(S.lastPanel(), 'chat');
  S.chatReceived({ from: 3, name: 'Bruno', text: 'b', time: 0 });
  assert.equal(store.unread, 0);
  assert.deepEqual(changes.at(-1), { what: ['chat'], id: null });
  assert.equal(store.chat.length, 2);

  // Remote tracks are keyed by the SDP's msid track id, not track.id; a
  // track object re-keyed to another publisher (recycled m-line) leaves its
  // old key, and a gone track re-renders its publisher's tile and the stage.
  const track = { id: 'browser-name', kind: 'video' };
  S.trackAdded(track, '3', '3-1');
  assert.deepEqual([...store.remoteTracks.keys()], ['3-1']);
  assert.deepEqual(changes.at(-1), { what: ['stage', 'tracks'], id: '3' });
  S.trackAdded(track, 4, '4-1');
  assert.deepEqual([...store.remoteTracks.keys()], ['4-1']);
  assert.equal(store.remoteTracks.get('4-1').publisher, '4');
  assert.deepEqual(changes.slice(-2), [
    { what: ['tracks'], id: '3' },
    { what: ['stage', 'tracks'], id: '4' },
  ]);
  S.trackEnded('4-1');
  assert.equal(store.remoteTracks.size, 0);
  assert.deepEqual(changes.at(-1), { what: ['stage', 'tracks'], id: '4' });
  const count = changes.length;
  S.trackEnded('4-1');
  assert.equal(changes.length, count, 'an unknown key changes nothing');

  // Hands: in the order raised, one per participant; ours is myHandRaised.
  assert.equal(S.handChanged(3, true), true);
  assert.equal(S.handChanged(7, true), true);
  assert.equal(S.handChanged(3, true), false, 'one hand per participant');
  assert.deepEqual(store.hands, ['3', '7']);
  assert.equal(store.myHandRaised, true);
  assert.deepEqual(changes.at(-1), { what: ['controls', 'hands', 'people'], id: '7' });
  S.setHands([7]);
  assert.deepEqual(store.hands, ['7']);
  S.handChanged(7, false);
  assert.equal(store.myHandRaised, false);
  S.reactionReceived(3, '👏');
  assert.deepEqual(changes.at(-1), { what: ['reaction'], id: '3' });
  assert.equal(store.reactions.at(-1).emoji, '👏');

  // Leaving the meeting clears it, not who we are.
  S.handChanged(3, true);
  S.participantMuted(3, 'audio', true);
  assert.equal(store.info.get('3').audioMuted, true);
  S.resetCall();
  assert.equal(store.joined, false);
  assert.equal(store.names.size, 0);
  assert.deepEqual(store.panels, []);
  assert.equal(store.selfId, 7);
  assert.deepEqual(store.hands, []);
  assert.deepEqual(changes.at(-1), { what: ['controls', 'hands', 'panels', 'reset', 'stage'], id: null });

  unsubscribe();
  const n = changes.length;
  S.setStatus('lobby');
  assert.equal(changes.length, n);
});
