// Device switching during the call (issue 16): with more fake cameras
// (Chromium's `--use-fake-device-for-media-stream=device-count=3`; its
// fake_device_1 emulates a depth camera (Y16) that WebRTC does not encode,
// so the switch goes to fake_device_2, an ordinary one), Aline
// switches camera from the camera menu, then microphone from the settings
// dialog, mid-call: the new track goes out on the same sender
// (replaceTrack, no new publish offer), and the others keep decoding her
// video and receiving her audio (framesDecoded and audio bytes grow).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startSalon, joinRoom, receiving, waitFor, CHROMIUM, CHROMIUM_ARGS } from './helpers.mjs';

async function launchWithTwoCameras() {
  const dir = await mkdtemp(path.join(tmpdir(), 'salon-e2e-devices-'));
  const args = CHROMIUM_ARGS.map((a) => (a === '--use-fake-device-for-media-stream' ? `${a}=device-count=3` : a));
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args, viewport: { width: 1280, height: 800 } });
  return {
    context,
    close: async () => {
      await context.close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test('switching camera and microphone mid-call: the others keep decoding', { timeout: 180_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchWithTwoCameras();
  t.after(() => browser.close());
  const ROOM = 'Peripheriques';
  const sent = [];
  const aline = await joinRoom(browser.context, salon.url, ROOM, 'Aline');
  const page = aline.page;
  page.on('websocket', (ws) => ws.on('framesent', ({ payload }) => {
    try {
      sent.push(JSON.parse(String(payload)).type);
    } catch {
      // Not JSON.
    }
  }));
  const bruno = await joinRoom(browser.context, salon.url, ROOM, 'Bruno', { camera: false });
  await receiving(bruno, aline, 20_000);

  const cams = (await page.evaluate(() => window.salonTest.devices())).filter((d) => d.kind === 'videoinput');
  t.diagnostic(`cameras: ${cams.map((c) => c.label).join(', ')}`);
  const before = await page.evaluate(() => window.salonTest.currentDevice('video'));
  const other = cams.find((c) => c.label === 'fake_device_2');
  assert.ok(other && other.deviceId !== before, 'a second colour fake camera');

  // The camera menu on the camera button: the other camera.
  await page.click('#cam-devices');
  await page.waitForSelector('#cam-menu .device');
  assert.equal(await page.getAttribute(`#cam-menu .device[data-device-id="${before}"]`, 'aria-pressed'), 'true');
  const publishOffers = sent.filter((x) => x === 'publish-offer').length;
  const t0 = Date.now();
  await page.click(`#cam-menu .device[data-device-id="${other.deviceId}"]`);
  await waitFor(async () => (await page.evaluate(() => window.salonTest.currentDevice('video'))) === other.deviceId, 'the camera switched');
  // The sender carries the new track; no renegotiation.
  const senderDevice = await page.evaluate(() => window.salonTest.pcs().pub.getSenders().find((s) => s.track?.kind === 'video')?.track.getSettings().deviceId);
  assert.equal(senderDevice, other.deviceId);
  assert.equal(await page.getAttribute(`#cam-menu .device[data-device-id="${other.deviceId}"]`, 'aria-pressed'), 'true');
  await page.keyboard.press('Escape');
  // Bruno keeps decoding Aline's video (and hearing her).
  const ms = await receiving(bruno, aline, 15_000);
  t.diagnostic(`camera switched; Bruno decodes new frames ${Date.now() - t0} ms after the click (${ms} ms of sampling)`);

  // The microphone, from the settings dialog.
  const mics = (await page.evaluate(() => window.salonTest.devices())).filter((d) => d.kind === 'audioinput');
  const micBefore = await page.evaluate(() => window.salonTest.currentDevice('audio'));
  const otherMic = mics.find((m) => m.deviceId !== micBefore && m.deviceId !== 'default' && m.deviceId !== 'communications');
  if (otherMic) {
    await page.click('#more');
    await page.click('#open-settings');
    await page.waitForSelector('#settings-dialog[open]');
    await page.selectOption('#set-mic', otherMic.deviceId);
    await waitFor(async () => (await page.evaluate(() => window.salonTest.currentDevice('audio'))) === otherMic.deviceId, 'the microphone switched');
    await page.keyboard.press('Escape');
    await receiving(bruno, aline, 15_000);
    t.diagnostic(`microphone switched to ${otherMic.label}`);
  } else {
    t.diagnostic('one fake microphone only: the microphone switch is not exercised');
  }
  assert.equal(sent.filter((x) => x === 'publish-offer').length, publishOffers, 'no new publish offer');

  // Bruno turns the data saver on in the settings: Aline's video is asked
  // at 180 lines at most, whatever the size of her tile.
  const heightOfAline = () =>
    bruno.page.evaluate((id) => {
      const key = document.querySelector(`#tile-${id} video`).srcObject.getVideoTracks()[0].id;
      let h = null;
      for (const msg of window.salonTest.constraintsSent()) for (const c of msg) if (c.track_id === key) h = c.max_height;
      return h;
    }, aline.id);
  assert.ok((await heightOfAline()) > 180, `Aline's tile asks more than 180 lines first (${await heightOfAline()})`);
  await bruno.page.click('#more');
  await bruno.page.click('#open-settings');
  await bruno.page.check('#set-datasaver');
  await bruno.page.keyboard.press('Escape');
  await waitFor(async () => (await heightOfAline()) === 180, 'the data saver caps the video at 180 lines', 5_000);
  assert.equal(await bruno.page.evaluate(() => document.activeElement?.id), 'more', 'focus back on the button that opened the settings');
  // The mic stays muted across a switch if it was muted.
  await page.click('#mic');
  await page.click('#cam-devices');
  await page.click(`#cam-menu .device[data-device-id="${before}"]`);
  await waitFor(async () => (await page.evaluate(() => window.salonTest.currentDevice('video'))) === before, 'back to the first camera');
  assert.equal(await page.getAttribute('#mic', 'aria-pressed'), 'true');
  await receiving(bruno, aline, 15_000).catch(async () => {
    // Audio is muted: only video must keep flowing.
    const s1 = (await bruno.page.evaluate(() => window.salonTest.stats()))[aline.id];
    await new Promise((r) => setTimeout(r, 1_000));
    const s2 = (await bruno.page.evaluate(() => window.salonTest.stats()))[aline.id];
    assert.ok(s2.framesDecoded > s1.framesDecoded, 'video still decoded');
  });
});
