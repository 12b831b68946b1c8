/** OpenAPI 3.1 description of the HTTP API, served at GET /openapi.json. */
const error = {
  type: 'object',
  required: ['error', 'message'],
  properties: { error: { type: 'string' }, message: { type: 'string' } },
} as const;
const money = {
  type: 'string',
  pattern: '^-?\\d+\\.\\d{3}$',
  description: 'exact decimal, 3 places',
} as const;
const totals = {
  type: 'object',
  properties: { lines: { type: 'integer' }, quantity: { type: 'integer' }, amount: money },
} as const;
const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});
const json = (schema: unknown, description = 'OK') => ({
  description,
  content: { 'application/json': { schema } },
});
const limit = {
  name: 'limit',
  in: 'query',
  required: false,
  schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
} as const;

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'retail-pipeline API',
    version: '1.0.0',
    description:
      'Ingest invoice lines onto the stream and read them back in real time. ' +
      'Send `x-api-key` when the deployment sets an API key (all routes but /health and /openapi.json).',
  },
  components: {
    securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' } },
    schemas: {
      Error: error,
      InvoiceLineInput: {
        type: 'object',
        required: ['invoiceNo', 'lineNo', 'stockCode', 'quantity', 'invoiceDate', 'unitPrice', 'country'],
        properties: {
          invoiceNo: { type: 'string', pattern: '^[A-Z]?\\d{1,10}$' },
          lineNo: { type: 'integer', minimum: 1, maximum: 1000000 },
          stockCode: { type: 'string', minLength: 1, maxLength: 32 },
          description: { type: ['string', 'null'], maxLength: 255 },
          quantity: { type: 'integer' },
          invoiceDate: { type: 'string', description: 'Europe/London local time YYYY-MM-DDTHH:MM:SS' },
          unitPrice: { type: ['string', 'number'], description: 'decimal, at most 3 places' },
          customerId: { type: ['string', 'integer', 'null'] },
          country: { type: 'string', minLength: 1, maxLength: 64 },
          producedAt: { type: 'string', format: 'date-time', description: 'defaults to acceptedAt' },
        },
      },
      InvalidLines: {
        allOf: [
          { $ref: '#/components/schemas/Error' },
          {
            type: 'object',
            properties: {
              invalid: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { index: { type: 'integer' }, reason: { type: 'string' } },
                },
              },
            },
          },
        ],
      },
      Lineage: {
        type: 'object',
        properties: {
          producedAt: { type: 'string', format: 'date-time' },
          acceptedAt: { type: 'string', format: 'date-time' },
          streamWriteSentAt: {
            type: 'string',
            format: 'date-time',
            description:
              'when the DynamoDB write storing the line was sent (the acknowledged time is in the warehouse)',
          },
          streamVisibleAt: { type: 'string', format: 'date-time' },
        },
      },
      Totals: totals,
    },
  },
  security: [{ apiKey: [] }],
  paths: {
    '/invoices': {
      post: {
        summary: 'Put invoice lines onto the stream',
        description:
          'All or nothing: when any line is invalid the answer is 400 listing every bad line and no line ' +
          'is written. 202 only after the stream acknowledged every line. On 503 resend the whole request: ' +
          'lines are identified by (invoiceNo, lineNo).',
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: { type: 'array', items: { $ref: '#/components/schemas/InvoiceLineInput' } },
            },
            'application/x-ndjson': {
              schema: { type: 'string', description: 'one InvoiceLineInput per line' },
            },
          },
        },
        responses: {
          '202': json({
            type: 'object',
            properties: {
              accepted: { type: 'integer' },
              invoices: { type: 'integer' },
              acceptedAt: { type: 'string', format: 'date-time' },
            },
          }),
          '400': {
            description: 'not JSON, empty, or invalid lines',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/InvalidLines' } } },
          },
          '401': errorResponse('missing or wrong API key'),
          '413': errorResponse('more lines or bytes than allowed per request'),
          '415': errorResponse('wrong Content-Type'),
          '503': errorResponse('the stream did not take every line; resend'),
        },
      },
    },
    '/invoices/{invoiceNo}': {
      get: {
        summary: 'One invoice with its lines, exact totals, status and lineage',
        parameters: [{ name: 'invoiceNo', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '200': json({
            type: 'object',
            properties: {
              invoiceNo: { type: 'string' },
              kind: { enum: ['sale', 'cancellation', 'adjustment'] },
              status: { enum: ['complete', 'partial', 'cancellation', 'adjustment'] },
              invoiceDate: { type: 'string' },
              invoiceTs: { type: 'string', format: 'date-time' },
              customerId: { type: ['string', 'null'] },
              country: { type: 'string' },
              countryCode: { type: 'string' },
              region: { type: 'string' },
              totals: { $ref: '#/components/schemas/Totals' },
              lines: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    lineNo: { type: 'integer' },
                    stockCode: { type: 'string' },
                    description: { type: ['string', 'null'] },
                    quantity: { type: 'integer' },
                    unitPrice: money,
                    lineTotal: money,
                    isNonProduct: { type: 'boolean' },
                    lineage: { $ref: '#/components/schemas/Lineage' },
                  },
                },
              },
            },
          }),
          '400': errorResponse('malformed invoice number'),
          '404': errorResponse('unknown invoice'),
        },
      },
    },
    '/customers/{customerId}/invoices': {
      get: {
        summary: "A customer's invoices, newest first",
        parameters: [
          { name: 'customerId', in: 'path', required: true, schema: { type: 'string' } },
          limit,
          {
            name: 'cursor',
            in: 'query',
            required: false,
            schema: { type: 'string' },
            description: 'nextCursor',
          },
        ],
        responses: {
          '200': json({
            type: 'object',
            properties: {
              customerId: { type: 'string' },
              invoices: { type: 'array', items: { type: 'object' } },
              nextCursor: { type: ['string', 'null'] },
            },
          }),
          '400': errorResponse('malformed id, limit or cursor'),
          '404': errorResponse('no invoices for this customer'),
        },
      },
    },
    '/products/{stockCode}/sales': {
      get: {
        summary: "A product's recent lines and sales totals",
        parameters: [{ name: 'stockCode', in: 'path', required: true, schema: { type: 'string' } }, limit],
        responses: {
          '200': json({ type: 'object' }),
          '400': errorResponse('malformed stock code'),
          '404': errorResponse('no sales for this product'),
        },
      },
    },
    '/stats/countries': {
      get: {
        summary: 'Real-time lines, invoices, quantity and revenue per country',
        responses: { '200': json({ type: 'object' }) },
      },
    },
    '/health': {
      get: {
        summary: 'Liveness and store reachability',
        security: [],
        responses: { '200': json({ type: 'object' }), '503': json({ type: 'object' }, 'unavailable') },
      },
    },
    '/openapi.json': {
      get: { summary: 'This document', security: [], responses: { '200': json({ type: 'object' }) } },
    },
  },
} as const;
