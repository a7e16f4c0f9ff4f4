import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import type { ArgumentsHost } from '@nestjs/common';
import type { HttpAdapterHost } from '@nestjs/core';
import { Admission } from '../src/core/admission.js';
import { connectTopics, parseConnectRequest } from '../src/core/connect-request.js';
import type { PushletRefusalReason } from '../src/core/counters.js';
import {
  httpStatusOf,
  PushletBrokerError,
  PushletError,
  PushletForbiddenError,
  PushletLimitError,
  PushletRouteRefusal,
  PushletShuttingDownError,
  PushletUnauthorizedError,
  PushletUnavailableError,
  PushletValidationError,
} from '../src/core/errors.js';
import { askHook } from '../src/core/hooks.js';
import { refusalReasonOf } from '../src/core/refusals.js';
import { sessionEndWire } from '../src/core/session-end.js';
import { settleWithin } from '../src/core/timers.js';
import { TopicRegistry } from '../src/core/topic-registry.js';
import { CLOSE_CODES, EVENTS } from '../src/protocol/frames.js';
import { PushletErrorFilter } from '../src/pushlet-error.filter.js';
import { MESSAGES } from '../src/pushlet.messages.js';
import { toHttpException } from '../src/pushlet.service.js';

const SILENT = { log: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
const LIMITS = {
  maxConnections: 10,
  maxConnectionsPerAddress: 10,
  maxConnectionsPerUser: 1,
  topicsPerConnection: 10,
  patternsPerConnection: 10,
  bufferBytes: 1_000,
  maxMessageBytes: 1_000,
  maxRewind: 100,
  maxHistoryPage: 100,
};

function request(url: string, headers: Record<string, string> = {}): IncomingMessage {
  return { url, headers, socket: { remoteAddress: '10.0.0.1' } } as unknown as IncomingMessage;
}

function counting() {
  const refused: PushletRefusalReason[] = [];
  const counters = {
    refusal: (reason: PushletRefusalReason) => refused.push(reason),
    fannedOut: () => undefined,
    slowConsumer: () => undefined,
    resumed: () => undefined,
  };
  return { refused, counters };
}

describe('one home per rule (issue "The house")', () => {
  it("httpStatusOf: 400, 401, 403, 503, a guard's own status; not the module's: undefined", () => {
    assert.equal(httpStatusOf(new PushletValidationError('x')), 400);
    assert.equal(httpStatusOf(new PushletUnauthorizedError('x')), 401);
    assert.equal(httpStatusOf(new PushletForbiddenError('x')), 403);
    assert.equal(httpStatusOf(new PushletLimitError('x')), 503);
    assert.equal(httpStatusOf(new PushletShuttingDownError('x', 'shutdown')), 503);
    assert.equal(httpStatusOf(new PushletUnavailableError('x')), 503);
    assert.equal(httpStatusOf(new PushletRouteRefusal(418, { statusCode: 418, message: 'teapot' })), 418);
    assert.equal(httpStatusOf(new PushletError('x')), 400);
    assert.equal(httpStatusOf(new PushletBrokerError('x')), undefined);
    assert.equal(httpStatusOf(new Error('x')), undefined);
  });

  it('toHttpException and PushletErrorFilter answer the same statuses (the filter now answers 401)', () => {
    const errors = [new PushletValidationError('v'), new PushletUnauthorizedError('u'), new PushletForbiddenError('f'), new PushletLimitError('l')];
    for (const error of errors) {
      const exception = toHttpException(error) as { getStatus(): number };
      let replied: { body: unknown; status: number } | undefined;
      const adapterHost = {
        httpAdapter: { setHeader: () => undefined, reply: (_: unknown, body: unknown, status: number) => (replied = { body, status }) },
      } as unknown as HttpAdapterHost;
      const host = { switchToHttp: () => ({ getResponse: () => ({}) }) } as unknown as ArgumentsHost;
      new PushletErrorFilter(adapterHost).catch(error, host);
      assert.equal(exception.getStatus(), httpStatusOf(error));
      assert.deepEqual(replied, { body: { statusCode: httpStatusOf(error), message: error.message }, status: httpStatusOf(error) });
    }
  });

  it('refusalReasonOf: each refusal its reason, a failure none', () => {
    assert.equal(refusalReasonOf(new PushletLimitError('x', 'address_limit')), 'address_limit');
    assert.equal(refusalReasonOf(new PushletShuttingDownError('x', 'shutdown')), 'shutdown');
    assert.equal(refusalReasonOf(new PushletUnauthorizedError('x')), 'unauthenticated');
    assert.equal(refusalReasonOf(new PushletForbiddenError('x')), 'forbidden');
    assert.equal(refusalReasonOf(new PushletValidationError('x')), 'invalid');
    assert.equal(refusalReasonOf(new PushletUnavailableError('x')), 'unavailable');
    assert.equal(refusalReasonOf(new PushletRouteRefusal(403, {})), 'guard');
    assert.equal(refusalReasonOf(new PushletBrokerError('x')), undefined);
  });

  it('sessionEndWire: a notice only for expired and disconnected, the close codes, graceful or cut', () => {
    assert.deepEqual(sessionEndWire('expired').notice, { event: EVENTS.expired, data: MESSAGES.identityExpired });
    assert.deepEqual(sessionEndWire('disconnected', 'bye').notice, { event: EVENTS.disconnected, data: 'bye' });
    assert.equal(sessionEndWire('disconnected').text, MESSAGES.disconnected);
    assert.equal(sessionEndWire('shutdown').notice, undefined);
    assert.equal(sessionEndWire('shutdown').closeCode, CLOSE_CODES.goingAway);
    assert.equal(sessionEndWire('slow').closeCode, CLOSE_CODES.tryAgainLater);
    assert.equal(sessionEndWire('expired').closeCode, CLOSE_CODES.identityExpired);
    assert.equal(sessionEndWire('disconnected').closeCode, CLOSE_CODES.disconnected);
    assert.equal(sessionEndWire('error').closeCode, CLOSE_CODES.internalError);
    assert.deepEqual(
      (['shutdown', 'slow', 'error', 'expired', 'disconnected'] as const).map((reason) => sessionEndWire(reason).graceful),
      [true, false, false, true, true],
    );
  });

  it('the shutdown gate: closed once, every connection refused with a 503 counted as shutdown (server-side consumers not counted)', () => {
    const { refused, counters } = counting();
    const admission = new Admission({ limits: LIMITS }, counters, SILENT);
    admission.checkOpen(request('/events'));
    admission.close();
    assert.throws(
      () => admission.checkOpen(request('/events')),
      (error: unknown) => error instanceof PushletShuttingDownError && httpStatusOf(error) === 503,
    );
    assert.throws(() => admission.admit('ws', request('/ws'), null), PushletShuttingDownError);
    assert.throws(() => admission.admit('sse', undefined, null), PushletShuttingDownError);
    assert.deepEqual(refused, ['shutdown', 'shutdown']);
  });

  it('limits are counted under their reason by the admission', () => {
    const { refused, counters } = counting();
    const admission = new Admission({ limits: LIMITS }, counters, SILENT);
    const first = admission.admit('sse', request('/events'), { id: 'u' });
    assert.throws(
      () => admission.admit('ws', request('/ws'), { id: 'u' }),
      (error: unknown) => error instanceof PushletLimitError && error.reason === 'user_limit',
    );
    first.slot.release();
    admission.admit('ws', request('/ws'), { id: 'u' });
    assert.deepEqual(refused, ['user_limit']);
    assert.equal(admission.connectionStats().ws, 1);
  });

  it('refresh must name the same user (Admission.reauthenticate)', async () => {
    const { counters } = counting();
    const admission = new Admission({ limits: LIMITS, authenticate: (_request, { token }) => ({ id: token ?? 'nobody' }) }, counters, SILENT);
    assert.deepEqual(await admission.reauthenticate(request('/ws'), { transport: 'ws', token: 'ann', identity: { id: 'ann' } }), { id: 'ann' });
    await assert.rejects(admission.reauthenticate(request('/ws'), { transport: 'ws', token: 'bob', identity: { id: 'ann' } }), {
      message: MESSAGES.refreshOtherUser,
    });
  });

  it('askHook: the answer, or the fallback and a warning when the hook throws', async () => {
    const warnings: string[] = [];
    const logger = { warn: (message: string) => warnings.push(message) };
    assert.equal(await askHook(logger, 'authorize', ' for topic "a"', () => true, false), true);
    assert.equal(
      await askHook(
        logger,
        'authorize',
        ' for topic "a"',
        () => {
          throw new Error('boom');
        },
        false,
      ),
      false,
    );
    assert.deepEqual(warnings, ['authorize threw for topic "a": Error: boom']);
  });

  it("settleWithin: done, timeout, or the work's own error", async () => {
    assert.equal(await settleWithin(Promise.resolve(), 1_000), 'done');
    // Its timer does not hold the process open: something else does here.
    const alive = setTimeout(() => undefined, 1_000);
    assert.equal(await settleWithin(new Promise(() => undefined), 10), 'timeout');
    clearTimeout(alive);
    await assert.rejects(settleWithin(Promise.reject(new Error('no')), 1_000), /no/);
  });

  it('connect requests: topics once each in order, the default when none, Last-Event-ID before ?lastEventId=', () => {
    assert.deepEqual(connectTopics(['b', 'a', 'b']), ['b', 'a']);
    assert.deepEqual(connectTopics(undefined, ['messages']), ['messages']);
    assert.deepEqual(connectTopics([], ['messages']), ['messages']);
    assert.deepEqual(connectTopics('a', ['messages']), ['a']);
    const parsed = parseConnectRequest(request('/events?topic=a&topic=a&topic=b&lastEventId=1-0&format=json', { 'last-event-id': '2-0' }));
    assert.deepEqual(parsed.topics, ['a', 'b']);
    assert.equal(parsed.lastEventId, '2-0');
    assert.equal(parsed.params.get('format'), 'json');
    assert.equal(parseConnectRequest(request('/ws?lastEventId=1-0')).lastEventId, '1-0');
    assert.deepEqual(parseConnectRequest(request('/ws')).topics, []);
  });

  it("broadcasts are the registry's: held by every connection, never named beside other topics", () => {
    assert.deepEqual(TopicRegistry.withBroadcasts(['a']), ['a', '*']);
    assert.deepEqual(TopicRegistry.subscribed(['a', '*']), ['a']);
    assert.deepEqual(TopicRegistry.named(['a', '*']), ['a']);
    assert.deepEqual(TopicRegistry.named(['*']), ['*']);
  });
});
