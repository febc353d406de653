// Package apischema reads API schema trees in the shape of PVE's apidata.js
// (nodes with path, text, leaf, info and children) and compares the methods
// we declare against PVE's, so that paths, flags, permissions, parameters and
// return shapes stay compatible with PVE's clients.
//
// The comparison is semantic, following PVE's JSONSchema validator:
//
//   - booleans are 0/1 in PVE's data; 1, true and "1" are equal, and so are
//     numbers and numeric strings ("0" == 0); two strings compare exactly;
//   - protected, download_allowed, expose_credentials and optional default to
//     0 when absent; allowtoken defaults to 1 (PVE's method schema says so,
//     and PVE's own dump writes it on all 649 methods: 644 times 1, 5 times 0);
//   - additionalProperties defaults to allowed when absent (the validator
//     rejects extra keys only when it is defined and false; 13 PVE methods
//     omit it on their parameters);
//   - proxyto null and absent both mean "not proxied";
//   - parameters.type absent means "object";
//   - enum lists are compared as sets;
//   - description, verbose_description, typetext, format_description, title,
//     renderer and print_width are presentation and never compared, nor is a
//     method's internal name;
//   - return schemas are compared by shape only: type, optional, format,
//     properties, items, additionalProperties, oneOf and links.
//
// Differences that are deliberate are listed in a deviation file (see
// ParseDeviations); a listed deviation that no longer matches anything is
// itself reported, so the list cannot rot.
package apischema
