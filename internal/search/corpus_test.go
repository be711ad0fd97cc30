package search

// Realistic documents in the languages pier's first users write in.

var articlesMapping = obj(
	"settings", obj("number_of_shards", 1),
	"mappings", obj("properties", obj(
		"title", obj("type", "text", "analyzer", "english", "fields", obj("raw", obj("type", "keyword"))),
		"body", obj("type", "text", "analyzer", "english"),
		"tags", obj("type", "keyword"),
		"price", obj("type", "float"),
		"published", obj("type", "date"),
		"featured", obj("type", "boolean"),
		"author", obj("properties", obj("name", obj("type", "text"), "country", obj("type", "keyword"))),
	)),
)

var articles = []map[string]any{
	{"_id": "1", "title": "Full-text search engines explained", "body": "A search engine builds an inverted index so that searching millions of documents takes milliseconds. Ranking puts the best documents first.",
		"tags": list("search", "databases"), "price": 0, "published": "2024-01-15", "featured": true, "author": obj("name", "Ada Lovelace", "country", "GB")},
	{"_id": "2", "title": "Scaling a Python API with a caching proxy", "body": "Putting a small Go caching proxy in front of a slow Python API made it four times faster. The engine caches responses per URL.",
		"tags": list("python", "performance", "caching"), "price": 12.5, "published": "2024-02-03", "featured": false, "author": obj("name", "Guido Rossum", "country", "NL")},
	{"_id": "3", "title": "Background jobs and task queues", "body": "Queues run slow work in the background: sending e-mails, resizing images. Retries with backoff keep the jobs running when services fail.",
		"tags": list("queues", "performance"), "price": 20, "published": "2024-02-20", "featured": false, "author": obj("name", "Grace Hopper", "country", "US")},
	{"_id": "4", "title": "The quick brown fox", "body": "The quick brown fox jumps over the lazy dog. A fox that is quick is rarely brown in the search results.",
		"tags": list("examples"), "price": 5, "published": "2024-03-01", "featured": false, "author": obj("name", "Ada Lovelace", "country", "GB")},
	{"_id": "5", "title": "Brown bears and quick rivers", "body": "Bears fish in quick rivers; the brown ones are the biggest. No fox was seen.",
		"tags": list("nature"), "price": 8, "published": "2024-03-18", "featured": true, "author": obj("name", "Jane Goodall", "country", "GB")},
	{"_id": "6", "title": "Monitoring a high-audience site", "body": "Measure requests per second first, then add processes for CPU-bound work. Searching logs needs an index.",
		"tags": list("monitoring", "performance"), "price": 15, "published": "2024-04-02", "featured": false, "author": obj("name", "Grace Hopper", "country", "US")},
}

var recettesMapping = obj("mappings", obj("properties", obj(
	"titre", obj("type", "text", "analyzer", "french"),
	"texte", obj("type", "text", "analyzer", "french"),
	"region", obj("type", "keyword"),
)))

var recettes = []map[string]any{
	{"_id": "r1", "titre": "La tarte aux pommes de ma grand-mère", "texte": "Épluchez les pommes, étalez la pâte et faites cuire la tarte quarante minutes.", "region": "Normandie"},
	{"_id": "r2", "titre": "Les crêpes bretonnes", "texte": "Une pâte légère, du beurre salé et une poêle bien chaude : les crêpes sont prêtes.", "region": "Bretagne"},
	{"_id": "r3", "titre": "Recette du bœuf bourguignon", "texte": "Le bœuf mijote longuement dans le vin rouge avec les carottes et les oignons.", "region": "Bourgogne"},
	{"_id": "r4", "titre": "Des recettes de gâteaux pour l'été", "texte": "Trois gâteaux aux fruits rouges, faciles et rapides, pour les journées chaudes.", "region": "Provence"},
}

var livrosMapping = obj("mappings", obj("properties", obj(
	"titulo", obj("type", "text", "analyzer", "portuguese"),
	"resumo", obj("type", "text", "analyzer", "portuguese"),
	"ano", obj("type", "integer"),
)))

var livros = []map[string]any{
	{"_id": "l1", "titulo": "Memórias Póstumas de Brás Cubas", "resumo": "Um defunto autor conta as memórias da sua vida com ironia.", "ano": 1881},
	{"_id": "l2", "titulo": "Dom Casmurro", "resumo": "Bentinho desconfia de Capitu e escreve o livro das suas lembranças.", "ano": 1899},
	{"_id": "l3", "titulo": "Os Lusíadas", "resumo": "O poema épico canta as navegações portuguesas e os livros de viagens.", "ano": 1572},
	{"_id": "l4", "titulo": "A Hora da Estrela", "resumo": "A vida de Macabéa, uma nordestina no Rio de Janeiro.", "ano": 1977},
}

var wenzhangMapping = obj("mappings", obj("properties", obj(
	"biaoti", obj("type", "text", "analyzer", "cjk"),
	"neirong", obj("type", "text", "analyzer", "cjk"),
)))

var wenzhang = []map[string]any{
	{"_id": "z1", "biaoti": "全文搜索引擎的原理", "neirong": "搜索引擎使用倒排索引，可以在毫秒内检索数百万个文档。"},
	{"_id": "z2", "biaoti": "如何学习中文", "neirong": "每天阅读和写作，坚持练习汉字。"},
	{"_id": "z3", "biaoti": "缓存代理让接口更快", "neirong": "在慢速接口前面放一个缓存代理，速度提高了四倍。"},
}

// load creates index with mapping and bulk-loads docs.
func (s *server) load(index string, mapping map[string]any, docs []map[string]any) {
	s.t.Helper()
	if mapping != nil {
		s.must(200, "PUT", "/"+index, mapping)
	}
	var lines []any
	for _, d := range docs {
		src := map[string]any{}
		for k, v := range d {
			if k != "_id" {
				src[k] = v
			}
		}
		lines = append(lines, obj("index", obj("_index", index, "_id", d["_id"])), src)
	}
	out := s.bulk("/_bulk", lines...)
	if out["errors"] != false {
		s.t.Fatalf("bulk load of %s: %v", index, out)
	}
}
