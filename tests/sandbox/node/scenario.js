// The billing scenario through stripe-node, Stripe's official Node client, against the sandbox.
//
//   node scenario.js http://127.0.0.1:PORT
//
// Customer and card, a meter, a licensed and a tiered metered price (nested arrays), a two-item
// subscription anchored on the 1st of the month, a meter event, a prorated upgrade, an invoice
// with its lines, auto-pagination, expand, include[]=total_count, a declined payment mapped to
// StripeCardError and an unknown parameter mapped to StripeInvalidRequestError. Each step prints
// one line (`ok name`); the first failure prints `FAIL name: reason` and exits 1.
'use strict';

const Stripe = require('stripe');

const base = new URL(process.argv[2]);
const stripe = new Stripe('sk_test_node_scenario', {
  host: base.hostname,
  port: Number(base.port),
  protocol: base.protocol.replace(':', ''),
  maxNetworkRetries: 0,
  telemetry: false,
});

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const steps = [];
function step(name, fn) {
  steps.push([name, fn]);
}

const made = {};
const now = Math.floor(Date.now() / 1000);

step('customer with a card', async () => {
  made.customer = await stripe.customers.create({
    email: 'node@example.com', name: 'Node Ltd', metadata: {tenant_id: 't-node'},
    payment_method: 'pm_card_visa',
    invoice_settings: {default_payment_method: 'pm_card_visa'},
  });
  check(made.customer.id.startsWith('cus_'), `customer id ${made.customer.id}`);
  made.pm = made.customer.invoice_settings.default_payment_method;
  check(typeof made.pm === 'string' && made.pm.startsWith('pm_'), 'no default payment method');
});

step('meter', async () => {
  made.meter = await stripe.billing.meters.create({
    display_name: 'Queries', event_name: 'node_queries',
    default_aggregation: {formula: 'sum'},
    customer_mapping: {type: 'by_id', event_payload_key: 'stripe_customer_id'},
    value_settings: {event_payload_key: 'value'},
  });
  check(made.meter.status === 'active', `meter status ${made.meter.status}`);
});

step('licensed and tiered metered prices', async () => {
  const product = await stripe.products.create({name: 'Pro'});
  made.base = await stripe.prices.create({
    currency: 'usd', product: product.id, unit_amount: 9900,
    recurring: {interval: 'month'}, lookup_key: 'node_pro_base',
  });
  made.overage = await stripe.prices.create({
    currency: 'usd', product: product.id, billing_scheme: 'tiered', tiers_mode: 'graduated',
    tiers: [{up_to: 100000, unit_amount: 0}, {up_to: 'inf', unit_amount_decimal: '0.08'}],
    recurring: {interval: 'month', usage_type: 'metered', meter: made.meter.id},
    expand: ['tiers'],
  });
  check(made.overage.tiers.length === 2, 'tiers not expanded');
  // stripe-node 23 parses decimal strings into its Decimal type.
  check(String(made.overage.tiers[1].unit_amount_decimal) === '0.08',
    `tier decimal ${made.overage.tiers[1].unit_amount_decimal}`);
  made.enterprise = await stripe.prices.create({
    currency: 'usd', product: product.id, unit_amount: 49900,
    recurring: {interval: 'month'},
  });
});

step('two-item subscription on the 1st of the month', async () => {
  made.sub = await stripe.subscriptions.create({
    customer: made.customer.id,
    items: [{price: made.base.id}, {price: made.overage.id}],
    billing_cycle_anchor_config: {day_of_month: 1},
    expand: ['latest_invoice'],
  });
  check(made.sub.status === 'active', `status ${made.sub.status}`);
  check(made.sub.items.data.length === 2, 'two items');
  const metered = made.sub.items.data.find((i) => i.price.id === made.overage.id);
  check(!('quantity' in metered), 'a metered item carries no quantity');
  check(made.sub.billing_cycle_anchor_config.day_of_month === 1, 'anchor config echoed');
  check(new Date(made.sub.billing_cycle_anchor * 1000).getUTCDate() === 1, 'anchored on the 1st');
  const invoice = made.sub.latest_invoice;
  check(typeof invoice === 'object' && invoice.status === 'paid', 'first invoice paid');
  check(!('subscription' in invoice), 'no top-level invoice.subscription');
  check(invoice.parent.subscription_details.subscription === made.sub.id, 'parent subscription');
});

step('meter event', async () => {
  const event = await stripe.billing.meterEvents.create({
    event_name: 'node_queries', identifier: 'node-1', timestamp: now - 60,
    payload: {stripe_customer_id: made.customer.id, value: '125000'},
  });
  check(event.identifier === 'node-1', 'identifier echoed');
});

step('prorated upgrade', async () => {
  const baseItem = made.sub.items.data.find((i) => i.price.id === made.base.id);
  const updated = await stripe.subscriptions.update(made.sub.id, {
    items: [{id: baseItem.id, price: made.enterprise.id}],
    proration_behavior: 'always_invoice',
  });
  check(updated.items.data.some((i) => i.price.id === made.enterprise.id), 'price swapped');
  made.upgradeInvoice = updated.latest_invoice;
});

step('invoice and its lines', async () => {
  const invoice = await stripe.invoices.retrieve(made.upgradeInvoice);
  check(invoice.lines.data.length >= 2, `lines ${invoice.lines.data.length}`);
  check(!('total_count' in invoice.lines), 'no total_count unless asked');
  const lines = await stripe.invoices.listLineItems(invoice.id, {limit: 1});
  check(lines.data.length === 1 && lines.has_more, 'a page of one line');
});

step('auto-pagination and total_count', async () => {
  for (let i = 0; i < 5; i++) {
    await stripe.customers.create({email: `page${i}@example.com`});
  }
  const seen = [];
  for await (const customer of stripe.customers.list({limit: 2})) {
    seen.push(customer.id);
  }
  check(seen.length === 6 && new Set(seen).size === 6, `auto-pagination saw ${seen.length}`);
  const counted = await stripe.customers.list({limit: 1, include: ['total_count']});
  check(counted.total_count === 6, `total_count ${counted.total_count}`);
});

step('declined payment is a StripeCardError', async () => {
  const failing = await stripe.customers.create({
    payment_method: 'pm_card_chargeCustomerFail',
    invoice_settings: {default_payment_method: 'pm_card_chargeCustomerFail'},
  });
  await stripe.invoiceItems.create({customer: failing.id, amount: 2000, currency: 'usd'});
  const invoice = await stripe.invoices.create({
    customer: failing.id, pending_invoice_items_behavior: 'include',
  });
  try {
    await stripe.invoices.pay(invoice.id);
    throw new Error('paying with a failing card succeeded');
  } catch (error) {
    check(error instanceof Stripe.errors.StripeCardError, `error type ${error.type}`);
    check(error.statusCode === 402 && error.code === 'card_declined', `code ${error.code}`);
    check(error.payment_method && error.payment_method.billing_details !== undefined,
      'the card error carries the whole payment method');
  }
});

step('unknown parameter is a StripeInvalidRequestError', async () => {
  try {
    await stripe.customers.create({bogus: 'x'});
    throw new Error('an unknown parameter was accepted');
  } catch (error) {
    check(error instanceof Stripe.errors.StripeInvalidRequestError, `error type ${error.type}`);
    check(error.param === 'bogus', `param ${error.param}`);
  }
});

step('unimplemented parameter is refused, naming it', async () => {
  try {
    await stripe.subscriptions.create({
      customer: made.customer.id, items: [{price: made.base.id}],
      discounts: [{coupon: 'x'}],
    });
    throw new Error('an unimplemented parameter was accepted');
  } catch (error) {
    check(error instanceof Stripe.errors.StripeInvalidRequestError, `error type ${error.type}`);
    check(error.param === 'discounts', `param ${error.param}`);
  }
});

(async () => {
  for (const [name, fn] of steps) {
    try {
      await fn();
      console.log(`ok ${name}`);
    } catch (error) {
      console.log(`FAIL ${name}: ${error && error.message}`);
      process.exit(1);
    }
  }
  console.log(`stripe-node ${Stripe.PACKAGE_VERSION || require('stripe/package.json').version}: ` +
    `${steps.length} steps passed`);
})();
