/*
 * cxbridge priority-sync: when an incident becomes critical, ask cxbridge to raise its caller's
 * priority in the Genesys Cloud queue they are waiting in.
 *
 * Business rule (System Definition > Business Rules), installation steps in README.md:
 *   Name:      cxbridge priority-sync
 *   Table:     Incident [incident]
 *   Advanced:  true
 *   When:      after          Update: true          Order: 1000
 *   Condition: current.priority.changesTo(1) && !current.caller_id.nil()
 *
 * It reads these system properties:
 *   cxbridge.priority_sync.url                 https://<api id>.execute-api.<region>.amazonaws.com/<stage>/priority-sync
 *   cxbridge.priority_sync.api_key             the ServiceNow API key of the cxbridge stack (x-api-key)
 *   cxbridge.priority_sync.signing_key         the same text as servicenowSigningKey in cxbridge's INBOUND_SECRET_ID
 *   cxbridge.priority_sync.conversation_field  optional: an incident field holding a Genesys conversation id
 *
 * Each request is signed: X-Cxbridge-Timestamp is the current unix time in seconds and
 * X-Cxbridge-Signature the lowercase hex HMAC-SHA256 of timestamp + "." + body. cxbridge refuses
 * requests older than 5 minutes and any signature it has seen before, so the instance clock
 * must be right (it is NTP-synchronised on ServiceNow-hosted instances) and every request is
 * made once; deliveryId makes each one unique.
 *
 * The call is asynchronous (executeAsync): saving the incident never waits for AWS or Genesys.
 * The response (status raised, already_raised, not_in_queue, no_waiting_conversation,
 * ignored_priority, or unavailable) appears in System Logs > Outbound HTTP Requests.
 */
(function cxbridgePrioritySync(current) {
	var PROPERTY = 'cxbridge.priority_sync.';
	var endpoint = String(gs.getProperty(PROPERTY + 'url', ''));
	var apiKey = String(gs.getProperty(PROPERTY + 'api_key', ''));
	var signingKey = String(gs.getProperty(PROPERTY + 'signing_key', ''));
	var conversationField = String(gs.getProperty(PROPERTY + 'conversation_field', ''));
	if (!endpoint || !apiKey || !signingKey) {
		gs.error('cxbridge priority-sync: set the system properties ' + PROPERTY + 'url, ' + PROPERTY + 'api_key and ' + PROPERTY + 'signing_key');
		return;
	}
	if (current.caller_id.nil()) {
		return;
	}

	var conversationId = '';
	if (conversationField && current.isValidField(conversationField)) {
		conversationId = String(current.getValue(conversationField) || '');
	}
	var body = JSON.stringify({
		incidentSysId: String(current.getUniqueValue()),
		incidentNumber: String(current.getValue('number')),
		priority: String(current.getValue('priority')),
		callerSysId: String(current.getValue('caller_id')),
		conversationId: conversationId,
		deliveryId: String(gs.generateGUID())
	});
	var timestamp = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));

	var request = new sn_ws.RESTMessageV2();
	request.setEndpoint(endpoint);
	request.setHttpMethod('POST');
	request.setRequestHeader('Content-Type', 'application/json');
	request.setRequestHeader('Accept', 'application/json');
	request.setRequestHeader('x-api-key', apiKey);
	request.setRequestHeader('X-Cxbridge-Timestamp', timestamp);
	request.setRequestHeader('X-Cxbridge-Signature', sign(signingKey, timestamp + '.' + body));
	request.setRequestBody(body);
	request.setHttpTimeout(10000);
	request.executeAsync();

	// sign returns the lowercase hex HMAC-SHA256 of data. GlideCertificateEncryption.generateMac
	// takes the key base64-encoded and returns the MAC base64-encoded.
	function sign(key, data) {
		var mac = new GlideCertificateEncryption().generateMac(GlideStringUtil.base64Encode(key), 'HmacSHA256', data);
		return base64ToHex(String(mac));
	}

	function base64ToHex(b64) {
		var alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
		var hex = '';
		var bits = 0;
		var value = 0;
		for (var i = 0; i < b64.length; i++) {
			var c = b64.charAt(i);
			if (c === '=') {
				break;
			}
			var n = alphabet.indexOf(c);
			if (n < 0) {
				continue; // line breaks
			}
			value = ((value << 6) | n) & 0xfff;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				var octet = (value >> bits) & 0xff;
				hex += (octet < 16 ? '0' : '') + octet.toString(16);
			}
		}
		return hex;
	}
})(current);
