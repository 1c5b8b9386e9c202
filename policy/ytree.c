/*
 * YAML events -> struct ynode tree (see ytree.h). Owns nothing after ytree_cleanup.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "policy/ytree.h"

int diag_set(struct policy_diag *diag, int err, const char *name, unsigned line, unsigned col,
	     const char *path, const char *fmt, ...)
{
	va_list ap;
	size_t off;
	int n;

	if (!diag)
		return err;
	diag->line = line;
	diag->column = col;
	if (line)
		n = snprintf(diag->text, sizeof(diag->text), "%s:%u:%u: ", name, line, col);
	else
		n = snprintf(diag->text, sizeof(diag->text), "%s: ", name);
	off = n < 0 ? 0 : (size_t)n;
	if (off < sizeof(diag->text) && path && *path) {
		n = snprintf(diag->text + off, sizeof(diag->text) - off, "%s: ", path);
		off += n < 0 ? 0 : (size_t)n;
	}
	if (off < sizeof(diag->text)) {
		va_start(ap, fmt);
		vsnprintf(diag->text + off, sizeof(diag->text) - off, fmt, ap);
		va_end(ap);
	}
	return err;
}

bool ynode_is_null(const struct ynode *n)
{
	if (!n || n->type != YN_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->val, "~") == 0 || strcmp(n->val, "null") == 0 ||
	       strcmp(n->val, "Null") == 0 || strcmp(n->val, "NULL") == 0;
}

const char *ynode_type_name(const struct ynode *n)
{
	if (!n)
		return "nothing";
	if (ynode_is_null(n))
		return "null";
	switch (n->type) {
	case YN_SEQ:
		return "a list";
	case YN_MAP:
		return "a mapping";
	case YN_SCALAR:
	default:
		return "a scalar";
	}
}

/* An open collection while its events arrive: children collect in a malloc'd vector. */
struct frame {
	struct ynode *node;
	struct ynode **kids;
	size_t n, cap;
};

static int frame_push_kid(struct frame *f, struct ynode *kid)
{
	if (f->n == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 8;
		struct ynode **nk = realloc(f->kids, ncap * sizeof(*nk));
		if (!nk)
			return -1;
		f->kids = nk;
		f->cap = ncap;
	}
	f->kids[f->n++] = kid;
	return 0;
}

/* Line and column (1-based) of byte `offset`, for reader errors that carry no mark. */
static void offset_to_mark(const char *buf, size_t len, size_t offset, unsigned *line,
			   unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < offset && i < len; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

int ytree_load(struct ytree *t, const char *name, const char *buf, size_t len,
	       struct policy_diag *diag)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct frame stack[YTREE_MAX_DEPTH];
	size_t depth = 0;
	int docs = 0, rc = POLICY_ERR_NOMEM;
	bool done = false;

	memset(t, 0, sizeof(*t));
	if (!yaml_parser_initialize(&parser))
		return diag_set(diag, POLICY_ERR_NOMEM, name, 0, 0, NULL, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done) {
		struct ynode *node = NULL;
		unsigned line, col;

		if (!yaml_parser_parse(&parser, &ev)) {
			if (parser.error == YAML_MEMORY_ERROR) {
				rc = diag_set(diag, POLICY_ERR_NOMEM, name, 0, 0, NULL,
					      "out of memory");
			} else if (parser.error == YAML_READER_ERROR) {
				offset_to_mark(buf, len, parser.problem_offset, &line, &col);
				rc = diag_set(diag, POLICY_ERR_SYNTAX, name, line, col, NULL,
					      "not valid YAML: %s",
					      parser.problem ? parser.problem : "unreadable input");
			} else {
				line = (unsigned)parser.problem_mark.line + 1;
				col = (unsigned)parser.problem_mark.column + 1;
				rc = diag_set(diag, POLICY_ERR_SYNTAX, name, line, col, NULL,
					      "not valid YAML: %s%s%s",
					      parser.problem ? parser.problem : "syntax error",
					      parser.context ? " " : "",
					      parser.context ? parser.context : "");
			}
			goto out;
		}
		line = (unsigned)ev.start_mark.line + 1;
		col = (unsigned)ev.start_mark.column + 1;
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				rc = diag_set(diag, POLICY_ERR_SYNTAX, name, line, col, NULL,
					      "a second YAML document; a policy file holds one "
					      "(remove the \"---\")");
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_ALIAS_EVENT:
			rc = diag_set(diag, POLICY_ERR_SCHEMA, name, line, col, NULL,
				      "YAML aliases (*%s) are not supported; write the value out",
				      (const char *)ev.data.alias.anchor);
			yaml_event_delete(&ev);
			goto out;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			const yaml_char_t *anchor =
			    ev.type == YAML_SCALAR_EVENT	   ? ev.data.scalar.anchor
			    : ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
								   : ev.data.mapping_start.anchor;
			if (anchor) {
				rc = diag_set(
				    diag, POLICY_ERR_SCHEMA, name, line, col, NULL,
				    "YAML anchors (&%s) are not supported; write the value out",
				    (const char *)anchor);
				yaml_event_delete(&ev);
				goto out;
			}
			node = arena_alloc(&t->arena, sizeof(*node));
			if (!node) {
				rc = diag_set(diag, POLICY_ERR_NOMEM, name, 0, 0, NULL,
					      "out of memory");
				yaml_event_delete(&ev);
				goto out;
			}
			node->line = line;
			node->col = col;
			if (ev.type == YAML_SCALAR_EVENT) {
				size_t n = ev.data.scalar.length;
				node->type = YN_SCALAR;
				node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
				if (memchr(ev.data.scalar.value, '\0', n)) {
					rc =
					    diag_set(diag, POLICY_ERR_SCHEMA, name, line, col, NULL,
						     "a NUL character in a string is not allowed");
					yaml_event_delete(&ev);
					goto out;
				}
				node->val = arena_strndup(
				    &t->arena, (const char *)ev.data.scalar.value, n, false);
				node->len = n;
				if (!node->val) {
					rc = diag_set(diag, POLICY_ERR_NOMEM, name, 0, 0, NULL,
						      "out of memory");
					yaml_event_delete(&ev);
					goto out;
				}
			} else {
				node->type = ev.type == YAML_SEQUENCE_START_EVENT ? YN_SEQ : YN_MAP;
			}
			if (depth > 0 && frame_push_kid(&stack[depth - 1], node) != 0) {
				rc = diag_set(diag, POLICY_ERR_NOMEM, name, 0, 0, NULL,
					      "out of memory");
				yaml_event_delete(&ev);
				goto out;
			}
			if (depth == 0)
				t->root = node;
			if (node->type != YN_SCALAR) {
				if (depth == YTREE_MAX_DEPTH) {
					rc = diag_set(diag, POLICY_ERR_SCHEMA, name, line, col,
						      NULL, "nested deeper than %d levels",
						      YTREE_MAX_DEPTH);
					yaml_event_delete(&ev);
					goto out;
				}
				stack[depth++] = (struct frame){node, NULL, 0, 0};
			}
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT: {
			struct frame *f = &stack[depth - 1];
			if (f->n) {
				f->node->kids = arena_alloc(&t->arena, f->n * sizeof(*f->kids));
				if (!f->node->kids) {
					rc = diag_set(diag, POLICY_ERR_NOMEM, name, 0, 0, NULL,
						      "out of memory");
					yaml_event_delete(&ev);
					goto out;
				}
				memcpy(f->node->kids, f->kids, f->n * sizeof(*f->kids));
			}
			f->node->nkids = f->n;
			free(f->kids);
			depth--;
			break;
		}
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	rc = 0;
out:
	while (depth > 0)
		free(stack[--depth].kids);
	yaml_parser_delete(&parser);
	return rc;
}

void ytree_cleanup(struct ytree *t)
{
	arena_cleanup(&t->arena);
	t->root = NULL;
}
