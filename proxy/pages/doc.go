// Package pages renders the HTML pages backgate shows people: login errors,
// access denied, upstream errors, logged out. Templates are embedded; the
// pages load nothing from anywhere else. Internal reasons never appear here.
package pages
