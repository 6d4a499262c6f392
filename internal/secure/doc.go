// Package secure holds the end-to-end tests of ridestream over the
// connections managed clusters require: Kafka over SASL_SSL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512) and mutual TLS, and PostgreSQL with
// sslmode=verify-full, against a second Apache Kafka 4 broker
// (`scripts/kafka4.sh start-secure`) and a PostgreSQL cluster with TLS, both
// with certificates made by openssl when the tests start. It has no library
// code.
package secure
