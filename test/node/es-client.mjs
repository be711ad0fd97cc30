// Drives pier's search API with the official Elasticsearch client for
// Node.js (@elastic/elasticsearch 8), pointed at ELASTICSEARCH_URL. It
// prints one JSON object with the client's parsed answers; the Go test
// (test/e2e/search_node_test.go) asserts on them. Any error the client
// throws (a refused header, a failed product check, an error status)
// ends the script with exit status 1.
import { Client } from '@elastic/elasticsearch'

const url = process.env.ELASTICSEARCH_URL
if (!url) {
  console.error('ELASTICSEARCH_URL is not set')
  process.exit(2)
}
const client = new Client({ node: url, requestTimeout: 30000, maxRetries: 0 })

const out = {}
out.info = await client.info()
out.ping = await client.ping()

out.create = await client.indices.create({
  index: 'books',
  settings: { number_of_shards: 1 },
  mappings: {
    properties: {
      title: { type: 'text', analyzer: 'english' },
      genre: { type: 'keyword' },
      year: { type: 'integer' },
      price: { type: 'float' }
    }
  }
})
out.exists = await client.indices.exists({ index: 'books' })

const books = [
  { id: '1', title: 'The Old Man and the Sea', genre: 'novel', year: 1952, price: 9.5 },
  { id: '2', title: 'Running with the Wolves', genre: 'essay', year: 1992, price: 15 },
  { id: '3', title: 'The Sea Around Us', genre: 'essay', year: 1951, price: 12 },
  { id: '4', title: 'Sea of Tranquility', genre: 'novel', year: 2022, price: 20.5 },
  { id: '5', title: 'A Wolf at the Door', genre: 'novel', year: 2001, price: 8 }
]
out.bulk = await client.bulk({
  refresh: true,
  operations: books.flatMap(({ id, ...doc }) => [{ index: { _index: 'books', _id: id } }, doc])
})

out.search = await client.search({
  index: 'books',
  query: { match: { title: 'sea' } },
  highlight: { fields: { title: {} } },
  size: 10
})

out.aggs = await client.search({
  index: 'books',
  size: 0,
  aggs: { genres: { terms: { field: 'genre' } }, avg_price: { avg: { field: 'price' } }, max_year: { max: { field: 'year' } } }
})

out.count = await client.count({ index: 'books' })
out.countNovels = await client.count({ index: 'books', query: { term: { genre: 'novel' } } })

// a second index, then one search over both and one over all
await client.index({ index: 'films', id: 'f1', document: { title: 'The Sea Beast', genre: 'animation' }, refresh: true })
out.multi = await client.search({ index: ['books', 'films'], query: { match: { title: 'sea' } }, size: 10 })
out.all = await client.search({ query: { match: { title: 'sea' } }, size: 10 })

// an unsupported query: the client raises a ResponseError with ES's shape
try {
  await client.search({ index: 'books', query: { more_like_this: { like: 'sea' } } })
  out.unsupported = null
} catch (err) {
  out.unsupported = { name: err.name, status: err.meta?.statusCode, type: err.body?.error?.type }
}

console.log(JSON.stringify(out))
